"""The websocket endpoint (server/ws.py): Origin check and malformed messages."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.helpers import AppServer


def test_websocket_refuses_other_origins_and_bad_messages(server: AppServer) -> None:
    ws_url = server.ws_url
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        connect(ws_url, origin="http://evil.example")  # type: ignore[arg-type]
    assert info.value.response.status_code == 403
    with connect(ws_url) as ws:
        ws.send("hello")
        assert json.loads(ws.recv(timeout=5))["error"]["code"] == "bad_message"
        ws.send(json.dumps({"type": "subscribe", "channels": ["weather"]}))
        refusal = json.loads(ws.recv(timeout=5))
        assert refusal["error"]["code"] == "unknown_channel" and refusal["channel"] == "weather"
