"""The application factory: resources in cleanup_ctx, one error middleware, routes by module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from server import api, channels, jury_api, pages, registration, ws
from server.access import ensure_tokens
from server.auth import Handler, auth_middleware, principal_of
from server.config import Config
from server.connection import (
    ConnectionGuard,
    ConnectionLimits,
    connection_middleware,
    default_max_connections,
)
from server.countdown.ticker import Ticker
from server.database import create_pool, migrate
from server.dataset import batch_views
from server.dataset import views as dataset_views
from server.dataset.cohort import ensure_final
from server.dataset.final import resolve as resolve_sets
from server.errors import PodiumError
from server.event import EventSpec
from server.hub import Hub
from server.inclusion import live, portal_views, review_views, upload
from server.inclusion.node import open_node
from server.inclusion.pipeline import Intake
from server.intake import MAX_PENDING, RATE_LIMITER, RESULT_WAITERS, RateLimiter, ResultWaiters
from server.keys import (
    ARRIVED,
    CONFIG,
    CONNECTIONS,
    DICOM_NODE,
    EVENT,
    HUB,
    INTAKE,
    LISTENER,
    LOOP_MONITOR,
    POOL,
    PRINCIPAL,
    SCORING,
    TEMPLATES,
)
from server.listener import Listener
from server.loader import load_event
from server.loop_monitor import LoopMonitor
from server.release import arming
from server.resources import resource_dir
from server.storage import STORAGE, Storage, housekeeping
from server.worker import Scoring

log = logging.getLogger("podium")
access_log = logging.getLogger("podium.access")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               422: "unprocessable"}


def wants_json(request: web.Request) -> bool:
    return (request.path.startswith("/api/") or request.path in ("/healthz", "/ws")
            or "application/json" in request.headers.get("Accept", ""))


def error_response(request: web.Request, status: int, body: dict[str, Any]) -> web.Response:
    if wants_json(request):
        return web.json_response(body, status=status)
    template = request.app[TEMPLATES].get_template("error.html")
    html = template.render(status=status, error=body["error"], principal=principal_of(request),
                           event=request.app[EVENT])
    return web.Response(text=html, status=status, content_type="text/html")


@web.middleware
async def arrival_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Notes when the request arrived, before anything can make it wait (a pool connection,
    the token lookup): an upload's start is judged from this moment."""
    request[ARRIVED] = asyncio.get_running_loop().time()
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PodiumError as exc:
        return error_response(request, exc.status, exc.to_json())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.text if exc.text and exc.text != exc.reason else (
            f"{exc.reason}: {request.method} {request.path}")
        return error_response(request, exc.status, {"error": {"code": code, "message": message}})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, {"error": {
            "code": "internal_error",
            "message": "the server failed on this request; it is logged, please tell the "
                       "organizers"}})


class JsonAccessLogger(AbstractAccessLogger):
    """One JSON object per request. The query string is left out: login links carry tokens."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        principal = request.get(PRINCIPAL)
        record = {
            "ts": round(_now(), 3),
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": _bytes_sent(response),
            "ms": round(time * 1000, 1),
            "role": str(principal.role) if principal else None,
            "team": principal.team_name if principal else None,
        }
        self.logger.info(json.dumps(record))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _bytes_sent(response: web.StreamResponse) -> int:
    # A file sent with sendfile does not count in body_length; its length is the header's.
    if isinstance(response, web.FileResponse) and response.status in (200, 206):
        return response.content_length or response.body_length
    return response.body_length


def _now() -> float:
    return time.time()


async def _database(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    assert config.database_url, "the database URL is resolved before the app is built"
    pool = await create_pool(config.database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            credentials = ensure_tokens(app[EVENT], config.data_dir)
            report = await load_event(conn, app[EVENT], credentials)
            if await ensure_final(conn, app[EVENT], config.data_dir):
                # A final day built from a set now has its files: point the event at them.
                app[EVENT] = resolve_sets(app[EVENT], config.data_dir)
                report = await load_event(conn, app[EVENT], credentials)
        log.info("event %r loaded from %s (%s)", app[EVENT].name, app[EVENT].path,
                 "updated" if report.changed else "unchanged")
        await arming.arm(pool, app[EVENT], config.data_dir, config.allow_release)
        app[POOL] = pool
        yield
    finally:
        await pool.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection, the deadline ticker and the scoring slots, owned by the app:
    started after the pool, cancelled and awaited before it closes. The listener hands each
    announcement to whoever registered for it (docs/architecture.md, "Live updates")."""
    config = app[CONFIG]
    assert config.database_url
    listener = Listener(config.database_url)
    hub = Hub(app[POOL])
    channels.register(hub, listener)
    live.register(hub, listener)
    scoring = Scoring(app[POOL], config.database_url, config.scoring_workers,
                      config.scoring_timeout_s, config.scoring_memory_mb)
    ticker = Ticker(app[POOL])
    listener.on("submission", scoring.on_submission)
    listener.on("submission", app[RESULT_WAITERS].on_submission)
    listener.on("clock", ticker.on_clock)
    app[LISTENER], app[HUB], app[SCORING] = listener, hub, scoring
    tasks = [asyncio.create_task(listener.run(), name="listener"),
             asyncio.create_task(ticker.run(), name="ticker")]
    if config.scoring_workers > 0:
        tasks.append(asyncio.create_task(scoring.run(), name="scoring"))
    for task in tasks:
        task.add_done_callback(_report_death)
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _intake(app: web.Application) -> AsyncIterator[None]:
    """The inclusion intake (server/inclusion/pipeline.py): exams left half-processed by a
    stopped server are taken up again here; its worker processes stop before the pool closes."""
    config = app[CONFIG]
    intake = Intake(app[POOL], app[EVENT], config.data_dir, workers=config.intake_workers)
    await intake.start()
    app[INTAKE] = intake
    try:
        yield
    finally:
        await intake.close()


async def _dicom_node(app: web.Application) -> AsyncIterator[None]:
    """The DICOM node (server/inclusion/node.py), when `--dicom-port` is set: it listens only
    while the intake is there to take its studies, and stops before it."""
    config = app[CONFIG]
    if config.dicom_port is None:
        yield
        return
    node = await open_node(app[POOL], app[EVENT], config, app[INTAKE], app[STORAGE])
    app[DICOM_NODE] = node
    try:
        yield
    finally:
        await node.stop()


async def _loop_monitor(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[LOOP_MONITOR].run(), name="loop-monitor")
    task.add_done_callback(_report_death)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _report_death(task: asyncio.Task[None]) -> None:
    # These tasks run for the app's whole life: ending early is a fault someone must see.
    if not task.cancelled() and task.exception() is not None:
        log.critical("background task %s stopped", task.get_name(), exc_info=task.exception())


async def _close_websockets(app: web.Application) -> None:
    if HUB in app:
        await app[HUB].close_all()


# Pages run only their own files: no inline script or style, no framing, no plugins; forms
# and connections go to this server only.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def connection_limits(config: Config) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=config.max_connections or default_max_connections(),
        per_client=config.max_connections_per_client,
        header_timeout_s=config.header_timeout_s)


def runner_options(config: Config) -> dict[str, Any]:
    """aiohttp's per-connection settings for `web.AppRunner`."""
    return {"keepalive_timeout": config.keepalive_timeout_s,
            # Request line and each header at most 8 KiB, at most 64 headers.
            "max_line_size": 8190, "max_field_size": 8190, "max_headers": 64}


async def start_serving(app: web.Application) -> web.AppRunner:
    """Serves `app` on its config's host and port as `podium serve` does (connection guard,
    per-connection limits, JSON access log); the caller cleans the runner up."""
    from server.connection import GuardedSite

    config = app[CONFIG]
    runner = web.AppRunner(app, access_log_class=JsonAccessLogger, access_log=access_log,
                           handle_signals=False, **runner_options(config))
    await runner.setup()
    try:
        await GuardedSite(runner, config.host, config.port, app[CONNECTIONS]).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def create_app(config: Config, event: EventSpec) -> web.Application:
    guard = ConnectionGuard(connection_limits(config))
    app = web.Application(middlewares=[connection_middleware(guard), arrival_middleware,
                                       error_middleware, auth_middleware],
                          client_max_size=1024**2)
    app[CONFIG] = config
    app[CONNECTIONS] = guard

    async def close_connections(_: web.Application) -> None:
        guard.close_all()
    app.on_cleanup.append(close_connections)
    app[LOOP_MONITOR] = LoopMonitor()
    app[EVENT] = resolve_sets(event, config.data_dir)
    app[RATE_LIMITER] = RateLimiter(config.upload_burst, config.upload_every_s)
    app[MAX_PENDING] = config.max_pending_per_team
    app[RESULT_WAITERS] = ResultWaiters()
    app[STORAGE] = Storage.from_config(config)
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_background)
    app.cleanup_ctx.append(_intake)
    app.cleanup_ctx.append(_dicom_node)
    app.cleanup_ctx.append(_loop_monitor)
    app.cleanup_ctx.append(housekeeping)
    app.on_shutdown.append(_close_websockets)
    app.on_response_prepare.append(_security_headers)
    api.setup(app)
    jury_api.setup(app)
    pages.setup(app)
    review_views.setup(app)
    portal_views.setup(app)
    registration.setup(app)
    upload.setup(app)
    dataset_views.setup(app)
    batch_views.setup(app)
    ws.setup(app)
    app.router.add_static("/static/", resource_dir("static"), name="static")
    return app
