"""What the jury deliberates with, over HTTP: the results workbook, CSV boards, the plots and
rank stability. Computed from one snapshot of the results, off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server.access import Role
from server.auth import requires
from server.deliberation.plots import challenge_plots
from server.deliberation.stability import stability_by_challenge
from server.deliberation.workbook import board_csv, boards_from_results, build_workbook
from server.errors import NotFound
from server.keys import POOL
from server.results import EventResults, load_results

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _results(request: web.Request) -> EventResults:
    async with request.app[POOL].acquire() as conn:
        return await load_results(conn)


def workbook_bytes(results: EventResults) -> bytes:
    boards = boards_from_results(results)
    return build_workbook(results, boards, stability_by_challenge(results, boards))


@requires(Role.JURY, Role.ORGANIZER)
async def export_xlsx(request: web.Request) -> web.Response:
    results = await _results(request)
    body = await asyncio.to_thread(workbook_bytes, results)
    return web.Response(body=body, content_type=XLSX, headers={
        "Content-Disposition": 'attachment; filename="podium-results.xlsx"'})


@requires(Role.JURY, Role.ORGANIZER)
async def export_board_csv(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    results = await _results(request)
    challenge = next((c for c in results.challenges if c.slug == slug), None)
    if challenge is None:
        raise NotFound(f"no challenge {slug!r}", code="unknown_challenge")
    rows = boards_from_results(results)[slug]
    return web.Response(text=board_csv(rows, challenge.kind), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{slug}.csv"'})


def _analysis(results: EventResults, slug: str) -> dict[str, Any]:
    boards = boards_from_results(results)
    challenge = next(c for c in results.challenges if c.slug == slug)
    stability = stability_by_challenge(results, {slug: boards[slug]}).get(slug, {})
    return {"challenge": slug,
            "plots": challenge_plots(challenge, boards[slug], results.timezone),
            "stability": stability}


@requires(Role.JURY, Role.ORGANIZER)
async def analysis(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    results = await _results(request)
    if not any(c.slug == slug for c in results.challenges):
        raise NotFound(f"no challenge {slug!r}", code="unknown_challenge")
    return web.json_response(await asyncio.to_thread(_analysis, results, slug))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/export.xlsx", export_xlsx)
    r.add_get("/api/v1/challenges/{slug}/leaderboard.csv", export_board_csv)
    r.add_get("/api/v1/challenges/{slug}/analysis", analysis)
