"""`GET /ws`: subscribe to channels, receive a snapshot of each, then every change
(docs/api.md)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from server.auth import principal_of, public
from server.errors import BadOrigin
from server.hub import HEARTBEAT_S, Hub, Refused, Viewer
from server.keys import HUB

MAX_CHANNELS = 32


def _same_origin(request: web.Request) -> bool:
    # Browsers send Origin on websocket handshakes; scripts usually do not. A page on another
    # site must not ride on a logged-in jury member's cookie.
    origin = request.headers.get("Origin")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.host


@public
async def websocket(request: web.Request) -> web.StreamResponse:
    if not _same_origin(request):
        raise BadOrigin()
    hub = request.app[HUB]
    # No per-message compression: boards are a few KB on a local network, and deflate costs
    # each connection ~256 KB of state and half of a broadcast's CPU (bench/fanout.py).
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    viewer = hub.join(ws, principal_of(request), request.transport)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            await _handle(hub, viewer, msg.data)
    finally:
        await hub.leave(viewer)
    return ws


async def _handle(hub: Hub, viewer: Viewer, data: str) -> None:
    try:
        request = json.loads(data)
    except ValueError:
        hub.send(viewer, _error("bad_message", "messages must be JSON objects"))
        return
    if not isinstance(request, dict) or request.get("type") != "subscribe":
        hub.send(viewer, _error("bad_message", 'send {"type": "subscribe", "channels": [...]}'))
        return
    channels = request.get("channels")
    if (not isinstance(channels, list) or not channels or len(channels) > MAX_CHANNELS
            or not all(isinstance(c, str) for c in channels)):
        hub.send(viewer, _error("bad_message", "channels must be a non-empty list of names"))
        return
    for channel in channels:
        try:
            await hub.subscribe(viewer, channel)
        except Refused as refusal:
            hub.send(viewer, refusal.to_message())


def _error(code: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"code": code, "message": message}}


def setup(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
