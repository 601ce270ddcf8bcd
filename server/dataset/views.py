"""The organizers' API of splits (docs/api.md, docs/datasets.md)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.access import Role
from server.auth import requires, session_id
from server.dataset.cohort import make_split, split_json
from server.errors import BadJson, UnknownChallenge
from server.event import ChallengeSpec
from server.keys import CONFIG, EVENT, POOL
from server.session import operator_name
from server.store.sessions import operator_of


def _challenge(request: web.Request) -> ChallengeSpec:
    slug = request.match_info["slug"]
    event = request.app[EVENT]
    found = next((c for c in event.challenges if c.slug == slug), None)
    if found is None:
        raise UnknownChallenge(slug, [c.slug for c in event.challenges])
    return found


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadJson("the body must be a JSON object, e.g. {\"redo\": true}") from None
    if not isinstance(body, dict):
        raise BadJson("the body must be a JSON object, e.g. {\"redo\": true}")
    return body


@requires(Role.ORGANIZER)
async def make(request: web.Request) -> web.Response:
    """Splits the question's kept exams (`{"redo": true}` to split again before a release)."""
    challenge = _challenge(request)
    body = await _body(request)
    redo = body.get("redo") is True
    async with request.app[POOL].acquire() as conn:
        by = operator_name(body.get("by")) or await operator_of(conn, session_id(request))
        shown = await make_split(conn, challenge, request.app[CONFIG].data_dir,
                                 by=f"organizer ({by})" if by else "organizer", redo=redo)
    return web.json_response(shown, status=201)


@requires(Role.ORGANIZER)
async def show(request: web.Request) -> web.Response:
    challenge = _challenge(request)
    async with request.app[POOL].acquire() as conn:
        shown = await split_json(conn, challenge, request.app[CONFIG].data_dir)
    return web.json_response(shown)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/challenges/{slug}/split", make)
    app.router.add_get("/api/v1/challenges/{slug}/split", show)
