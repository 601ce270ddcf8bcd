"""What the jury deliberates with, over HTTP: the results workbook, CSV boards, the plots and
rank stability, and the winner reveal one place at a time. Computed from one snapshot of the
results, off the event loop.

The reveal is served step by step: step N holds the N last places of the final board (one
place per rank, teams sharing it together, as `reveal_order` gives them) and the plots and
rank stability of those teams only, so nothing about a place reaches the room's screen before
the jury reveals it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server import kinds, queries
from server.access import Role
from server.auth import requires
from server.deliberation.analysis import analysis_plots, ranking_analysis
from server.deliberation.plots import challenge_plots, team_colours
from server.deliberation.stability import stability_by_challenge
from server.deliberation.workbook import board_csv, results_workbook, reveal_order
from server.errors import BadStep, UnknownChallenge
from server.keys import POOL
from server.leaderboard import final_boards
from server.results import EventResults, load_results

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _results(request: web.Request, slug: str | None = None) -> EventResults:
    """The event's results, or only those of challenge `slug` (404 if there is none)."""
    async with request.app[POOL].acquire() as conn:
        results = await load_results(conn, slug)
        if slug is not None and not results.challenges:
            raise UnknownChallenge(slug, await queries.challenge_slugs(conn))
    return results


@requires(Role.JURY, Role.ORGANIZER)
async def export_xlsx(request: web.Request) -> web.Response:
    results = await _results(request)
    body = await asyncio.to_thread(results_workbook, results)
    return web.Response(body=body, content_type=XLSX, headers={
        "Content-Disposition": 'attachment; filename="podium-results.xlsx"'})


@requires(Role.JURY, Role.ORGANIZER)
async def export_board_csv(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    results = await _results(request, slug)
    (challenge,) = results.challenges
    rows = final_boards(results)[slug]
    return web.Response(text=board_csv(rows, kinds.of(challenge)), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{slug}.csv"'})


def _analysis(results: EventResults, slug: str) -> dict[str, Any]:
    boards = final_boards(results)
    challenge = next(c for c in results.challenges if c.slug == slug)
    stability = stability_by_challenge(results, {slug: boards[slug]}).get(slug, {})
    colours = team_colours(results.teams)
    ranking = ranking_analysis(challenge, boards[slug])
    return {"challenge": slug,
            # How close the teams are first: the rank distributions and significance map.
            "plots": {**analysis_plots(ranking, colours),
                      **challenge_plots(challenge, boards[slug], results.timezone, colours)},
            "stability": stability, "colours": colours,
            "ranking": ranking.to_json() if ranking is not None else None}


def reveal_step(results: EventResults, slug: str, step: int) -> dict[str, Any]:
    """The reveal after `step` key presses: the `step` last places, last place first, and the
    analysis of their teams; `more` says whether a place is left to reveal."""
    boards = final_boards(results)
    challenge = next(c for c in results.challenges if c.slug == slug)
    steps = reveal_order(boards[slug])
    shown = steps[:max(0, min(step, len(steps)))]
    rows = sorted((row for place in shown for row in place), key=lambda r: r.rank or 0)
    teams = {row.team for row in rows}
    stability = stability_by_challenge(results, {slug: boards[slug]}).get(slug, {}) \
        if rows else {}
    colours = team_colours(results.teams)
    plots = challenge_plots(challenge, rows, results.timezone, colours) if rows else {}
    ranking = ranking_analysis(challenge, boards[slug]) if rows else None
    if ranking is not None:
        # The places revealed so far only; Kendall's τ, which speaks of every team, at the end.
        ranking = ranking.only(teams, taus=len(shown) == len(steps))
        plots.update(analysis_plots(ranking, colours))
    return {
        "challenge": slug, "kind": challenge.kind,
        "columns": kinds.of(challenge).columns(), "step": len(shown),
        "more": len(shown) < len(steps),
        "places": [{"rank": place[0].rank, "rows": [r.to_json() for r in place]}
                   for place in shown],
        "plots": plots,
        "ranking": ranking.to_json() if ranking is not None else None,
        "stability": {team: share for team, share in stability.items() if team in teams},
        "colours": {team: colour for team, colour in colours.items() if team in teams},
    }


async def _challenge_results(request: web.Request) -> tuple[EventResults, str]:
    slug = request.match_info["slug"]
    return await _results(request, slug), slug


@requires(Role.JURY, Role.ORGANIZER)
async def analysis(request: web.Request) -> web.Response:
    results, slug = await _challenge_results(request)
    return web.json_response(await asyncio.to_thread(_analysis, results, slug))


@requires(Role.JURY, Role.ORGANIZER)
async def reveal(request: web.Request) -> web.Response:
    try:
        step = int(request.query.get("step", "0"))
    except ValueError:
        raise BadStep() from None
    results, slug = await _challenge_results(request)
    return web.json_response(await asyncio.to_thread(reveal_step, results, slug, step))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/export.xlsx", export_xlsx)
    r.add_get("/api/v1/challenges/{slug}/leaderboard.csv", export_board_csv)
    r.add_get("/api/v1/challenges/{slug}/analysis", analysis)
    r.add_get("/api/v1/challenges/{slug}/reveal", reveal)
