"""The store: SQL on the event's tables, returning dataclasses that presenters and rules take.
The caller owns the connection and, where one is needed, the transaction."""
