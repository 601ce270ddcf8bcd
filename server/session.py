"""Browser sessions: what the cookie holds and what it stands for.

The cookie carries a random session id, never the access token: the database keeps the id's
SHA-256 and the credential it was opened with, so logging out (or the token being removed
from the event) ends it for good, and a stolen cookie never reveals the token. What is
stored is server/store/sessions.py.
"""

from __future__ import annotations

from server.config import Config

PLAIN_COOKIE = "podium_session"
# Over https the cookie is Secure and carries the __Host- prefix: only this exact host, path
# "/", and a page served over plain http (e.g. on the venue network) cannot overwrite it.
SECURE_COOKIE = "__Host-podium_session"


def served_over_https(config: Config) -> bool:
    return config.public_url.startswith("https://")


def cookie_name(config: Config) -> str:
    return SECURE_COOKIE if served_over_https(config) else PLAIN_COOKIE


OPERATOR_CHARS = 80


def operator_name(raw: object) -> str | None:
    """A name for the log as typed: trimmed, one line, at most 80 characters; None if empty."""
    name = " ".join(str(raw or "").split())[:OPERATOR_CHARS]
    return name or None
