"""Validation-set releases on the server side: prepared (and checked) when the event is loaded,
and what each viewer may know of them (a sealed one's key only from the start). The download
itself is server/release/download.py; what is stored, server/store/releases.py.

A release with identifying DICOM attributes is not armed: it is prepared but refused to teams
until the organizers clean it or override the guard with a reason (`--allow-release`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from server.access import Principal, Role
from server.event import EventSpec
from server.queries import team_challenges
from server.store import releases as release_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Armed:
    slug: str
    path: Path
    size: int
    sha256: str
    sealed: bool
    key: str | None
    armed: bool
    findings: list[dict[str, str]]


def prepare(event: EventSpec, data_dir: Path, allow_reason: str | None) -> list[Armed]:
    """Blocking (hashing, packing): run in a thread. Checks and prepares every release."""
    from server.release import prepare_release, record_override, scan_release

    prepared = []
    overridden: dict[str, int] = {}
    for challenge in event.challenges:
        if challenge.release is None:
            continue
        inspection = scan_release(challenge.release)
        findings = [{"file": f.file, "tag": f.tag, "keyword": f.keyword, "reason": f.reason}
                    for f in inspection.findings]
        armed = not findings or allow_reason is not None
        if findings:
            log.error("release of %s has %d identifying attribute(s)%s; first: %s",
                      challenge.slug, len(findings),
                      " — served anyway, overridden" if armed else " — NOT served",
                      "; ".join(f"{f['file']} {f['tag']} {f['keyword']}" for f in findings[:5]))
            if armed:
                overridden[challenge.slug] = len(findings)
        release = prepare_release(challenge.release, data_dir / "releases" / challenge.slug,
                                  sealed=challenge.sealed)
        prepared.append(Armed(challenge.slug, release.path, release.size, release.sha256,
                              release.sealed, release.key, armed, findings))
    if overridden and allow_reason is not None:
        record_override(data_dir, event.path, allow_reason, overridden)
    return prepared


async def store(conn: asyncpg.Connection, releases: list[Armed],
                allow_reason: str | None) -> None:
    async with conn.transaction():
        for r in releases:
            await release_store.save(conn, r.slug, r.path, r.size, r.sha256, r.sealed, r.key,
                                     r.armed, r.findings, allow_reason if r.findings else None)
        await release_store.forget_others(conn, [r.slug for r in releases])


async def arm(pool: asyncpg.Pool, event: EventSpec, data_dir: Path,
              allow_reason: str | None) -> None:
    releases = await asyncio.to_thread(prepare, event, data_dir, allow_reason)
    async with pool.acquire() as conn:
        await store(conn, releases, allow_reason)


def key_visible(viewer: Principal | None, registered: bool, state: str) -> bool:
    """A sealed release's key: to registered teams, the jury and organizers, from the start."""
    if viewer is None or state == "waiting":
        return False
    return viewer.role is not Role.TEAM or registered


async def release_views(conn: asyncpg.Connection, viewer: Principal | None,
                        states: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What `viewer` may see of each release, by slug (the key only once started)."""
    team_id = viewer.team_id if viewer else None
    registered = set(await team_challenges(conn, team_id)) if team_id is not None else set()
    views = {}
    for r in await release_store.releases(conn):
        state = states.get(r.challenge, "waiting")
        views[r.challenge] = {
            "file_name": r.file_name, "size": r.size, "sha256": r.sha256,
            "sealed": r.sealed, "armed": r.armed,
            "key": r.key if r.sealed and key_visible(viewer, r.challenge in registered,
                                                     state) else None,
        }
    return views
