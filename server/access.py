"""Roles and access tokens.

A token is 32 random bytes (256 bits) in URL-safe base64. The database keeps only its SHA-256:
with that much entropy a slow password hash buys nothing, and a fast one lets every request be
checked with one indexed lookup. Generated tokens are kept in plain text in the data dir
(`tokens.json`, mode 0600) so `podium tokens` can print them again; tokens given in the event
file win over generated ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from server.event import EventSpec

TOKEN_FILE = "tokens.json"  # noqa: S105 - a file name, not a secret


class Role(StrEnum):
    ORGANIZER = "organizer"
    JURY = "jury"
    TEAM = "team"
    CENTER = "center"      # an inclusion center: sends exams, sees its own
    REVIEWER = "reviewer"  # an expert: grades the exams of its questions


@dataclass(frozen=True)
class Principal:
    """Who is asking: a role, and for a team, a center or a reviewer its database id and
    name (`member_id`, `member_name` for a center or a reviewer)."""

    role: Role
    team_id: int | None = None
    team_name: str | None = None
    member_id: int | None = None
    member_name: str | None = None

    @property
    def center_id(self) -> int | None:
        return self.member_id if self.role is Role.CENTER else None

    @property
    def reviewer_id(self) -> int | None:
        return self.member_id if self.role is Role.REVIEWER else None

    @property
    def name(self) -> str | None:
        """The team's, center's or reviewer's name; None for the organizers and the jury."""
        return self.team_name if self.role is Role.TEAM else self.member_name


MEMBER_ROLES = (Role.TEAM, Role.CENTER, Role.REVIEWER)


@dataclass(frozen=True)
class Credential:
    """One token: a role, and for a team, a center or a reviewer its name (`team`)."""

    role: Role
    team: str | None
    token: str = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.role}:{self.team}" if self.role in MEMBER_ROLES else str(self.role)

    @property
    def label(self) -> str:
        return self.team if self.team is not None else str(self.role)


def generate_token() -> str:
    # Never one starting with "-": `podium submit --token -x…` would read it as an option
    # (one token in 64 did). Drawing again keeps all 256 bits of the rest.
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def ensure_tokens(event: EventSpec, data_dir: Path) -> list[Credential]:
    """Every role's token: the event file's, else the stored one, else a new one (stored).

    The token file is locked while it is read and rewritten, so `podium tokens` and a starting
    server never hand out two different tokens for one role.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    wanted = [Credential(Role.ORGANIZER, None, event.organizer_token or ""),
              Credential(Role.JURY, None, event.jury_token or "")]
    wanted += [Credential(Role.TEAM, t.name, t.token or "") for t in event.teams]
    wanted += [Credential(Role.CENTER, c.name, c.token or "") for c in event.centers]
    wanted += [Credential(Role.REVIEWER, r.name, r.token or "") for r in event.reviewers]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        stored: dict[str, str] = json.loads(text) if text.strip() else {}
        changed = False
        result = []
        for credential in wanted:
            token = credential.token
            if not token:
                token = stored.get(credential.key) or ""
                if not token:
                    token = generate_token()
                    stored[credential.key] = token
                    changed = True
            result.append(Credential(credential.role, credential.team, token))
        if changed:
            handle.seek(0)
            handle.truncate()
            json.dump(stored, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
    return result
