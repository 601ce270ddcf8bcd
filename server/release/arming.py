"""Validation-set releases on the server side: prepared (and checked) when the event is loaded,
and what each viewer may know of them (a sealed one's key only from the start). The download
itself is server/release/download.py; what is stored, server/store/releases.py.

A release with identifying DICOM attributes is not armed: it is prepared but refused to teams
until the organizers clean it or override the guard with a reason (`--allow-release`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pydicom

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
    from server.release import prepare_release, record_override

    prepared = []
    overridden: dict[str, int] = {}
    for challenge in event.challenges:
        if challenge.release is None:
            continue
        folder = data_dir / "releases" / challenge.slug
        release = prepare_release(challenge.release, folder, sealed=challenge.sealed)
        findings = _findings(challenge.release, release.manifest, folder)
        armed = not findings or allow_reason is not None
        if findings:
            log.error("release of %s has %d identifying attribute(s)%s; first: %s",
                      challenge.slug, len(findings),
                      " — served anyway, overridden" if armed else " — NOT served",
                      "; ".join(f"{f['file']} {f['tag']} {f['keyword']}" for f in findings[:5]))
            if armed:
                overridden[challenge.slug] = len(findings)
        prepared.append(Armed(challenge.slug, release.path, release.size, release.sha256,
                              release.sealed, release.key, armed, findings))
    if overridden and allow_reason is not None:
        record_override(data_dir, event.path, allow_reason, overridden)
    return prepared


# The guard's verdict on a release, kept beside its archive: a restart (during the final day
# too) reads it instead of opening every file of the validation set again. It stands for the
# release's content — the manifest's names, sizes and SHA-256, which a changed release folder
# changes as it is packed again — and for the rules that gave it: the de-identification
# tables and the guard's code, and pydicom's version. Anything else and the release is read
# again.
GUARD_CACHE = "guard.json"


@functools.cache
def _rules_digest() -> str:
    import server.deid
    import server.release.guard

    digest = hashlib.sha256(pydicom.__version__.encode())
    modules = [*Path(server.deid.__file__).parent.glob("*.py"),
               Path(server.release.guard.__file__)]
    for path in sorted(modules):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _scan_key(manifest: Any) -> str:
    content = json.dumps([_rules_digest(), [[e.file, e.size, e.sha256] for e in manifest]])
    return hashlib.sha256(content.encode()).hexdigest()


def _findings(source: Path, manifest: Any, folder: Path) -> list[dict[str, str]]:
    """The guard's findings on the release at `source`: read from its store `folder` when
    they stand for this content and these rules, else found by scanning every file and
    recorded there."""
    from server.release import scan_release

    key = _scan_key(manifest)
    findings = _recorded_findings(folder / GUARD_CACHE, key)
    if findings is not None:
        return findings
    inspection = scan_release(source)
    findings = [{"file": f.file, "tag": f.tag, "keyword": f.keyword, "reason": f.reason}
                for f in inspection.findings]
    _record(folder, key, inspection, findings)
    return findings


def _recorded_findings(cache: Path, key: str) -> list[dict[str, str]] | None:
    try:
        recorded = json.loads(cache.read_text(encoding="utf-8"))
        if recorded.get("key") == key:
            return [{k: str(f[k]) for k in ("file", "tag", "keyword", "reason")}
                    for f in recorded["findings"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _record(folder: Path, key: str, inspection: Any, findings: list[dict[str, str]]) -> None:
    from server.release.archive import PARTIAL_SUFFIX

    counts = {"files": inspection.files, "dicom_files": inspection.dicom_files}
    # A crash leaves a partial file the archive's own clean-up removes at the next start.
    fd, partial = tempfile.mkstemp(prefix=f".{GUARD_CACHE}.", suffix=PARTIAL_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"key": key, **counts, "findings": findings}, out)
        os.replace(partial, folder / GUARD_CACHE)  # lost, it costs one more scan: no fsync
    except OSError:
        Path(partial).unlink(missing_ok=True)
        log.warning("could not record the guard's verdict in %s", folder)


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
