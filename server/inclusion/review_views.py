"""The experts' pages and API (docs/review.md): the review queue per question, the viewer (an
exam's slices rendered on the server) and the grade. A reviewer sees the exams of the
questions it grades only; the organizers see every queue and every exam, and grade none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from server.access import Principal, Role
from server.auth import principal_of, requires
from server.errors import BadJson, BadSlice, UnknownExam
from server.inclusion.render import AUTO, AXES, PRESETS
from server.inclusion.viewer import ExamCache, ExamView, load_exam, slice_png, window_of
from server.isotime import iso
from server.keys import CONFIG, POOL
from server.pages import render
from server.store import exams as exam_store
from server.store import reviews as store
from server.store.exams import Exam

EXAM_CACHE = web.AppKey("review_exam_cache", ExamCache)
SUMMARY_KEYS = ("modality", "slices", "rows", "columns", "thickness_mm", "kernel")


def _reviewer(request: web.Request) -> int | None:
    principal = principal_of(request)
    assert principal is not None
    return principal.reviewer_id


def _exam_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except ValueError:
        raise UnknownExam(request.match_info["id"]) from None
    if not 0 < value < 2 ** 63:
        raise UnknownExam(value)
    return value


def _queue_json(queue: store.Queue) -> dict[str, Any]:
    return {"challenge": queue.challenge, "title": queue.title, "reading": queue.reading,
            "in_review": queue.in_review, "graded_by_you": queue.graded_by_me,
            "waiting": [{"id": e.exam.id, "reading": e.reading,
                         "received_at": iso(e.exam.received_at),
                         "modality": e.exam.summary.get("modality"),
                         "slices": e.exam.summary.get("slices")} for e in queue.waiting]}


async def _queues(request: web.Request) -> list[dict[str, Any]]:
    async with request.app[POOL].acquire() as conn:
        return [_queue_json(q) for q in await store.queues(conn, _reviewer(request))]


def _folder(request: web.Request, exam: Exam) -> Path:
    data_dir = Path(request.app[CONFIG].data_dir)
    if exam.folder is None:
        return data_dir / "exams" / str(exam.id)
    return exam.folder if exam.folder.is_absolute() else data_dir / exam.folder


async def _view(request: web.Request, exam: Exam) -> ExamView:
    folder = _folder(request, exam)
    try:
        return await request.app[EXAM_CACHE].get(
            (exam.id, str(folder)), lambda: load_exam(folder, exam.summary))
    except (OSError, ValueError) as exc:
        raise BadSlice(f"exam {exam.id}'s images cannot be read: {exc}") from None


async def _exam_json(request: web.Request, exam_id: int) -> dict[str, Any]:
    reviewer = _reviewer(request)
    async with request.app[POOL].acquire() as conn:
        exam = await store.exam_for(conn, exam_id, reviewer)
        readings = await store.view(conn, exam, reviewer)
        findings = (await exam_store.findings(conn, [exam.id]))[exam.id]
        queues = await store.queues(conn, reviewer)
    view = await _view(request, exam)
    waiting = [e.exam.id for q in queues if q.challenge == exam.challenge for e in q.waiting]
    after = [i for i in waiting if i != exam.id]
    body: dict[str, Any] = {
        "id": exam.id, "challenge": exam.challenge, "stage": str(exam.stage),
        "grade": exam.grade if exam.stage is not exam_store.Stage.REVIEW else None,
        "received_at": iso(exam.received_at),
        "summary": {k: exam.summary.get(k) for k in SUMMARY_KEYS},
        "nodules": len(exam.summary.get("nodules") or []),
        "mask": bool(view.mask is not None),
        "clinical": exam.summary.get("clinical"),
        "warnings": [{"code": f.code, "severity": f.severity, "message": f.message,
                      "state": str(f.state), "reason": f.reason} for f in findings],
        "slices": view.counts(), "spacing": list(view.spacing),
        "window": {"name": view.preset, "level": view.window.level,
                   "width": view.window.width},
        "presets": {**{name: {"level": w.level, "width": w.width}
                       for name, w in PRESETS.items()},
                    AUTO: {"level": view.auto.level, "width": view.auto.width}},
        "next": after[0] if after else None,
        **readings,
    }
    principal: Principal | None = principal_of(request)
    if principal is not None and principal.role is Role.ORGANIZER:
        body["center"] = exam.center
    return body


@requires(Role.REVIEWER, Role.ORGANIZER)
async def review_page(request: web.Request) -> web.Response:
    return render(request, "review.html", queues=await _queues(request))


@requires(Role.REVIEWER, Role.ORGANIZER)
async def review_exam_page(request: web.Request) -> web.Response:
    exam = await _exam_json(request, _exam_id(request))
    return render(request, "review_exam.html", exam=exam, axes=AXES,
                  presets=[*PRESETS, AUTO])


@requires(Role.REVIEWER, Role.ORGANIZER)
async def queue_api(request: web.Request) -> web.Response:
    return web.json_response({"queues": await _queues(request)})


@requires(Role.REVIEWER, Role.ORGANIZER)
async def exam_api(request: web.Request) -> web.Response:
    return web.json_response(await _exam_json(request, _exam_id(request)))


@requires(Role.REVIEWER, Role.ORGANIZER)
async def slice_api(request: web.Request) -> web.Response:
    exam_id = _exam_id(request)
    async with request.app[POOL].acquire() as conn:
        exam = await store.exam_for(conn, exam_id, _reviewer(request))
    axis = request.match_info["axis"]
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise BadSlice(f"the {axis} slice index must be an integer, not "
                       f"{request.match_info['index']!r}") from None
    view = await _view(request, exam)
    overlay = request.query.get("overlay", "1") != "0"
    try:
        window = window_of(request.query.get("window"), view)
        png = await _render(view, axis, index, window, overlay)
    except ValueError as exc:
        raise BadSlice(str(exc)) from None
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=300"})


async def _render(view: ExamView, axis: str, index: int, window: Any, overlay: bool) -> bytes:
    return await asyncio.to_thread(slice_png, view, axis, index, window, overlay)


@requires(Role.REVIEWER)
async def grade_api(request: web.Request) -> web.Response:
    exam_id = _exam_id(request)
    try:
        body = await request.json()
    except ValueError:
        raise BadJson("the body must be a JSON object, e.g. {\"grade\": \"B\", \"comment\": "
                      "\"...\"}") from None
    if not isinstance(body, dict):
        raise BadJson("the body must be a JSON object, e.g. {\"grade\": \"B\"}")
    reviewer = _reviewer(request)
    assert reviewer is not None
    async with request.app[POOL].acquire() as conn:
        outcome = await store.grade(conn, exam_id, reviewer, body.get("grade"),
                                    body.get("comment", ""))
    return web.json_response({"exam": await _exam_json(request, exam_id),
                              "reading": outcome.reading, "settled": outcome.settled,
                              "stage": str(outcome.stage)})


def setup(app: web.Application) -> None:
    app[EXAM_CACHE] = ExamCache()
    app.router.add_get("/review", review_page)
    app.router.add_get("/review/exams/{id}", review_exam_page)
    app.router.add_get("/api/v1/review/queue", queue_api)
    app.router.add_get("/api/v1/review/exams/{id}", exam_api)
    app.router.add_get("/api/v1/review/exams/{id}/slices/{axis}/{index}", slice_api)
    app.router.add_post("/api/v1/review/exams/{id}/grade", grade_api)
