"""`GET /api/v1/challenges/{slug}/dataset`: the validation set, to registered teams from the
start (a sealed one at any time). Served with sendfile, Range and If-Range (aiohttp's
FileResponse), so an interrupted download resumes; every download is logged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from server.access import Role
from server.auth import principal_of, requires
from server.challenge import team_challenge
from server.errors import NoRelease, NotStarted, ReleaseBlocked
from server.keys import POOL
from server.store import releases as release_store


@requires(Role.TEAM)
async def dataset(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None and principal.team_id is not None
    slug = request.match_info["slug"]
    async with request.app[POOL].acquire() as conn:
        challenge = await team_challenge(conn, slug, principal.team_id)
        release = await release_store.release(conn, challenge.id)
        if release is None:
            raise NoRelease(slug)
        if not release.armed:
            raise ReleaseBlocked()
        if challenge.state == "waiting" and not release.sealed:
            raise NotStarted(f"the validation set of {slug!r} is released when the challenge "
                             "starts; download it then")
    challenge_id, team_id, size = challenge.id, principal.team_id, release.size
    pool = request.app[POOL]

    async def log_download(response: web.StreamResponse, range_start: int,
                           complete: bool) -> None:
        sent = response.content_length or 0 if complete else 0
        async with pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO dataset_download (challenge_id, team_id, range_start, bytes,
                                                 complete)
                   VALUES ($1, $2, $3, $4, $5)""",
                challenge_id, team_id, range_start, sent,
                complete and response.status in (200, 206) and range_start + sent >= size)

    return _LoggedFileResponse(release.path, log_download, headers={
        "Content-Disposition": f'attachment; filename="{release.file_name}"',
        "Content-Type": "application/zip", "X-Content-SHA256": release.sha256})


def _without_stale_range(request: web.BaseRequest, path: Path) -> web.BaseRequest:
    """aiohttp honours If-Range only as a date; with an entity tag that no longer matches, the
    client must get the whole file, not the tail of a different one spliced onto its part."""
    if_range = request.headers.get("If-Range", "").strip()
    if not if_range or hdrs.RANGE not in request.headers:
        return request
    if not (if_range.startswith('"') or if_range.startswith("W/")):
        return request  # a date: aiohttp's own check applies
    stat = path.stat()
    if if_range == f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"':
        return request
    headers = CIMultiDict(request.headers)
    headers.popall(hdrs.RANGE, None)
    headers.popall("If-Range", None)
    return request.clone(headers=headers)


class _LoggedFileResponse(web.FileResponse):
    """A FileResponse that records the download once the file has been sent (aiohttp sends
    it inside `prepare`), or failed to be."""

    def __init__(self, path: Path,
                 on_sent: Callable[[web.StreamResponse, int, bool], Awaitable[None]],
                 **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._on_sent = on_sent

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        complete = False
        effective = _without_stale_range(request, self._path)
        try:
            writer = await super().prepare(effective)
            complete = True
            return writer
        finally:
            start = effective.http_range.start or 0 if self.status == 206 else 0
            await self._on_sent(self, start, complete)


# The batch releases (server/dataset/batch_views.py) serve and log their archives alike.
LoggedFileResponse = _LoggedFileResponse
without_stale_range = _without_stale_range
