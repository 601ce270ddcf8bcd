"""Podium: live evaluation server for the final day of a data challenge."""

__version__ = "0.1.0"
