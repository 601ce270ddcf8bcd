"""The centers' resumable web upload (docs/inclusion-platform.md): routes added below."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    pass
