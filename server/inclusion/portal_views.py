"""The centers' portal, the organizers' inclusion dashboard, the digest page, and their API
(docs/centers.md, docs/api.md).

- `GET /center`: a center's exams and where each stands, its findings with their LORIS
  states, its timeline, its progress per question; live through the `exams` channel
  (server/inclusion/live.py). Showing a center its open violations marks them `notified`.
- `GET /inclusion`: the seed's Tables 2 and 3, progress to target with the margin, the best
  center of each question, the open violations to accept or reject, the newest exams.
- `GET /center/digest`: the center's digest since the last one (server/inclusion/digest.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from server.access import Role
from server.auth import principal_of, requires, session_id
from server.errors import (
    BadDecision,
    BadJson,
    CannotWithdraw,
    DecisionRefused,
    ReasonRequired,
    UnknownCenter,
    UnknownExam,
    UnknownViolation,
)
from server.inclusion import digest as digests
from server.inclusion.live import exams_json
from server.keys import CONFIG, EVENT, POOL, TEMPLATES
from server.pages import render
from server.queries import database_now
from server.session import operator_name
from server.store import exams as store
from server.store import inclusion_tables as tables
from server.store.exams import Exclusion, Stage, ViolationState
from server.store.sessions import operator_of

NEWEST = 20           # exams on the dashboard
OPEN_VIOLATIONS = 200


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise BadJson('the body must be a JSON object, e.g. {"reason": "..."}') from None
    if not isinstance(body, dict):
        raise BadJson('the body must be a JSON object, e.g. {"reason": "..."}')
    return body


def _center_id(request: web.Request) -> int:
    principal = principal_of(request)
    assert principal is not None and principal.center_id is not None
    return principal.center_id


async def _progress(conn: asyncpg.Connection, center_id: int) -> list[dict[str, Any]]:
    """The center's own tally per question, beside the question's progress to its target."""
    questions = {q.challenge: q for q in await tables.question_table(conn)}
    rows = []
    for row in await tables.center_table(conn, center_id=center_id):
        question = questions.get(row.challenge)
        rows.append({**row.to_json(),
                     "title": question.title if question else row.challenge,
                     "question": question.to_json() if question else None})
    return rows


async def center_exams(conn: asyncpg.Connection, center_id: int) -> dict[str, Any]:
    """What a center is shown of its exams; its open violations are marked `notified`."""
    rows = await store.exams(conn, center_id=center_id, limit=1000)
    shown = await exams_json(conn, rows)
    await store.mark_notified(conn, center_id)
    return {"exams": shown, "progress": await _progress(conn, center_id),
            "server_time": (await database_now(conn)).isoformat()}


# -- the center ---------------------------------------------------------------------------

@requires(Role.CENTER)
async def center_page(request: web.Request) -> web.Response:
    center_id = _center_id(request)
    async with request.app[POOL].acquire() as conn:
        data = await center_exams(conn, center_id)
        yours = {r["slug"] for r in await conn.fetch(
            """SELECT c.slug FROM center_question q JOIN challenge c ON c.id = q.challenge_id
               WHERE q.center_id = $1""", center_id)}
    # The upload panel offers the center's own questions only (the API refuses the others).
    questions = [{"slug": c.slug, "title": c.title} for c in request.app[EVENT].challenges
                 if c.slug in yours]
    return render(request, "center.html", data=data, questions=questions,
                  upload_mb=request.app[CONFIG].inclusion_upload_mb)


@requires(Role.CENTER)
async def center_exams_api(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        data = await center_exams(conn, _center_id(request))
    return web.json_response(data)


@requires(Role.CENTER, Role.ORGANIZER)
async def center_exam_api(request: web.Request) -> web.Response:
    """One exam: its own center's, or any for the organizers (404 for another center's)."""
    exam_id = _id(request)
    principal = principal_of(request)
    assert principal is not None
    async with request.app[POOL].acquire() as conn:
        exam = await store.exam(conn, exam_id)
        if exam is None or (principal.role is Role.CENTER
                            and exam.center_id != principal.center_id):
            raise UnknownExam(exam_id, " among yours; GET /api/v1/center/exams lists them")
        shown = (await exams_json(conn, [exam]))[0]
        if principal.role is Role.CENTER:
            await store.mark_notified(conn, exam.center_id)
    return web.json_response(shown)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route's pattern: 1 to 18 digits


# -- the digest page ----------------------------------------------------------------------

@requires(Role.CENTER, Role.ORGANIZER)
async def digest_page(request: web.Request) -> web.Response:
    """The center's digest since its last one; an organizer names the center
    (`?center=NAME`) or picks one."""
    principal = principal_of(request)
    assert principal is not None
    config = request.app[CONFIG]
    event = request.app[EVENT]
    async with request.app[POOL].acquire() as conn:
        centers = await conn.fetch("SELECT id, name FROM center WHERE in_event ORDER BY name")
        if principal.role is Role.CENTER:
            center_id = _center_id(request)
        else:
            wanted = request.query.get("center")
            if not wanted:
                return render(request, "digest.html", digest=None, centers=centers,
                              mailed=False, next_due=None)
            found = [c["id"] for c in centers if c["name"].casefold() == wanted.casefold()]
            if not found:
                raise UnknownCenter(wanted, [c["name"] for c in centers])
            center_id = found[0]
        now = await database_now(conn)
        days = digests.parse_days(config.digest_days)
        zone = ZoneInfo(event.timezone)
        since = (await digests.last_digest(conn, center_id)
                 or digests.last_due(now, days, zone))
        digest = await digests.gather(conn, center_id, since, now)
        if principal.role is Role.CENTER:
            await store.mark_notified(conn, center_id)
    name = digest.center
    mailed = bool(config.smtp_host) and any(c.email for c in event.centers if c.name == name)
    return render(request, "digest.html", digest=digest, centers=centers, mailed=mailed,
                  next_due=_next_due(now, days, zone))


def _next_due(now: datetime, days: tuple[int, ...], zone: ZoneInfo) -> datetime:
    probe = now + timedelta(days=7, seconds=1)
    due = digests.last_due(probe, days, zone)
    while True:
        earlier = digests.previous_due(due, days, zone)
        if earlier <= now:
            return due
        due = earlier


# -- the organizers ---------------------------------------------------------------------------

async def open_violations(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Violations still stopping their exam, newest exam first."""
    rows = await conn.fetch(
        """SELECT v.id, v.code, v.message, v.found, v.expected, v.state, e.id AS exam_id,
                  e.label, e.received_at, ce.name AS center, c.slug
           FROM violation v JOIN exam e ON e.id = v.exam_id
           JOIN center ce ON ce.id = e.center_id JOIN challenge c ON c.id = e.challenge_id
           WHERE v.severity = 'violation' AND v.state IN ('open', 'notified')
             AND e.stage = 'checked'
           ORDER BY e.received_at DESC, v.id LIMIT $1""", OPEN_VIOLATIONS)
    return [{"id": r["id"], "code": r["code"], "message": r["message"], "found": r["found"],
             "expected": r["expected"], "state": r["state"], "exam_id": r["exam_id"],
             "label": r["label"], "center": r["center"], "challenge": r["slug"],
             "received_at": r["received_at"].isoformat()} for r in rows]


async def dashboard_data(conn: asyncpg.Connection) -> dict[str, Any]:
    centers = await tables.center_table(conn)
    questions = await tables.question_table(conn)
    newest = await exams_json(conn, await store.exams(conn, limit=NEWEST))
    return {**tables.tables_json(centers, questions), "violations": await open_violations(conn),
            "exams": newest, "server_time": (await database_now(conn)).isoformat()}


@requires(Role.ORGANIZER)
async def dashboard(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        data = await dashboard_data(conn)
    return render(request, "inclusion.html", data=data)


@requires(Role.ORGANIZER)
async def violations_api(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await open_violations(conn)
    return web.json_response({"violations": found})


@requires(Role.ORGANIZER, Role.JURY)
async def tables_api(request: web.Request) -> web.Response:
    """Tables 2 and 3 (the jury reads them too: counts only, nothing of a patient)."""
    async with request.app[POOL].acquire() as conn:
        centers = await tables.center_table(conn)
        questions = await tables.question_table(conn)
        now = await database_now(conn)
    return web.json_response({**tables.tables_json(centers, questions),
                              "server_time": now.isoformat()})


async def _by(request: web.Request, conn: asyncpg.Connection, body: dict[str, Any]) -> str:
    # Who decides: the name a script sends, else the one given at the console's login.
    by = operator_name(body.get("by")) or await operator_of(conn, session_id(request))
    return f"organizer ({by})" if by else "organizer"


def _reason(body: dict[str, Any], what: str) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired(what)
    return " ".join(reason.split())[:1000]


@requires(Role.ORGANIZER)
async def decision(request: web.Request) -> web.Response:
    """Accepts or rejects a violation, with a reason (`store.exams.decide`)."""
    violation_id = _id(request)
    body = await _json_body(request)
    try:
        state = ViolationState(str(body.get("state")))
    except ValueError:
        raise BadDecision(body.get("state")) from None
    if state not in (ViolationState.ACCEPTED, ViolationState.REJECTED):
        raise BadDecision(body.get("state"))
    reason = _reason(body, "the decision")
    async with request.app[POOL].acquire() as conn:
        exists = await conn.fetchval("SELECT exam_id FROM violation WHERE id = $1",
                                     violation_id)
        if exists is None:
            raise UnknownViolation(violation_id)
        try:
            finding = await store.decide(conn, violation_id, state, reason,
                                         await _by(request, conn, body))
        except store.DecisionRefused as exc:
            raise DecisionRefused(violation_id, str(exc)) from None
        exam = await store.exam(conn, finding.exam_id)
        assert exam is not None
        shown = (await exams_json(conn, [exam]))[0]
    return web.json_response({"violation": next(f for f in shown["findings"]
                                                if f["id"] == violation_id),
                              "exam": shown})


@requires(Role.ORGANIZER)
async def withdraw(request: web.Request) -> web.Response:
    """Takes an exam out of the dataset, whatever its stage, with a reason."""
    exam_id = _id(request)
    body = await _json_body(request)
    reason = _reason(body, "withdrawing the exam")
    async with request.app[POOL].acquire() as conn:
        by = await _by(request, conn, body)
        async with conn.transaction():
            row = await conn.fetchrow("SELECT stage, exclusion FROM exam WHERE id = $1 "
                                      "FOR UPDATE", exam_id)
            if row is None:
                raise UnknownExam(exam_id)
            if row["stage"] == Stage.EXCLUDED:
                raise CannotWithdraw(exam_id, row["exclusion"])
            await store.exclude(conn, exam_id, Exclusion.WITHDRAWN,
                                f"withdrawn by the {by}: {reason}")
        exam = await store.exam(conn, exam_id)
        assert exam is not None
        shown = (await exams_json(conn, [exam]))[0]
    return web.json_response(shown)


def setup(app: web.Application) -> None:
    zone = ZoneInfo(app[EVENT].timezone)

    def local(moment: datetime | str | None, with_day: bool = True) -> str:
        if moment is None:
            return ""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M" if with_day else "%H:%M")

    app[TEMPLATES].filters["local_time"] = local
    r = app.router
    r.add_get("/center", center_page)
    r.add_get("/center/digest", digest_page)
    r.add_get("/inclusion", dashboard)
    r.add_get("/api/v1/center/exams", center_exams_api)
    r.add_get("/api/v1/center/exams/{id:\\d{1,18}}", center_exam_api)
    r.add_get("/api/v1/inclusion/tables", tables_api)
    r.add_get("/api/v1/violations", violations_api)
    r.add_post("/api/v1/violations/{id:\\d{1,18}}/decision", decision)
    r.add_post("/api/v1/exams/{id:\\d{1,18}}/withdraw", withdraw)
    digests.setup(app)
