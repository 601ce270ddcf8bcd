"""Refusals (server/errors.py): each a class with its own code and one of the contract's
statuses, each documented in docs/api.md's "Refusals" table, and each reaching the client as
`{"error": {"code", "message"}}` — as JSON for the API, on the error page for a browser."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

import server
from server import errors
from server.errors import PodiumError
from tests.helpers import ROOT, AppServer, set_challenge_keys
from tests.test_session import cookie_header, login, raw, session_cookie

# The statuses the API's contract allows for an error (docs/api.md).
CONTRACT_STATUSES = {400, 401, 403, 404, 408, 409, 413, 422, 429, 507}


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _refusal_classes() -> list[type[PodiumError]]:
    # Every server module imported, so a refusal defined anywhere is found.
    for module in pkgutil.walk_packages(server.__path__, "server."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return list(_all_subclasses(PodiumError))


def _refusals() -> list[type[PodiumError]]:
    """The classes that are refusals (they have a code), not statuses."""
    return [cls for cls in _refusal_classes() if hasattr(cls, "code")]


def test_every_refusal_is_defined_in_one_module() -> None:
    elsewhere = {f"{c.__module__}.{c.__qualname__}" for c in _refusal_classes()
                 if c.__module__ != "server.errors"}
    assert not elsewhere, f"refusals belong in server/errors.py: {sorted(elsewhere)}"


def test_each_code_is_defined_once_with_a_status_of_the_contract() -> None:
    owners: dict[str, list[str]] = {}
    for cls in _refusals():
        assert cls.status in CONTRACT_STATUSES, (cls.__name__, cls.status)
        assert re.fullmatch(r"[a-z][a-z_]+", cls.code), cls.code
        if "code" in vars(cls):
            owners.setdefault(cls.code, []).append(cls.__name__)
        else:
            # A narrower case of its parent's refusal (same code), e.g. the 409 of an
            # organizer naming an unregistered team beside the 403 of that team itself.
            parent = next(p for p in cls.__mro__[1:] if "code" in vars(p))
            assert issubclass(cls, parent) and cls.code == parent.code
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}
    assert len(owners) >= 30


def test_a_status_is_not_a_refusal() -> None:
    statuses = [cls for cls in _refusal_classes() if not hasattr(cls, "code")]
    assert {cls.__name__ for cls in statuses} >= {"BadRequest", "Forbidden", "Conflict"}
    for cls in statuses:
        assert cls.__bases__ == (PodiumError,) and cls.__subclasses__(), cls.__name__
        with pytest.raises(TypeError, match="raise one of its subclasses"):
            cls("no code")


def _documented() -> set[tuple[int, str]]:
    doc = (ROOT / "docs" / "api.md").read_text()
    section = doc.split("\n## Refusals\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.MULTILINE)
    assert len(rows) == len(set(rows)), "a row twice in the Refusals table"
    return {(int(status), code) for status, code in rows}


def test_the_docs_table_lists_every_refusal_and_nothing_else() -> None:
    defined = {(cls.status, cls.code) for cls in _refusals()}
    documented = _documented()
    assert defined - documented == set(), "refusals missing from docs/api.md#refusals"
    assert documented - defined == set(), "rows of docs/api.md#refusals no class raises"


def test_no_code_is_given_at_a_raise_site() -> None:
    """A refusal is its class: no raise site gives a code of its own."""
    names = {cls.__name__ for cls in _refusal_classes()}
    found = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in names and any(k.arg == "code" for k in node.keywords)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_refusal_renders_its_code_message_and_fields() -> None:
    refusal = errors.InvalidTransition("pause", "waiting", ["start"])
    assert (refusal.status, refusal.to_json()) == (409, {"error": {
        "code": "invalid_transition", "state": "waiting",
        "message": "cannot pause a waiting challenge (allowed now: start)"}})
    limit = errors.SubmissionLimit("nodules", 3)
    assert limit.to_json()["error"]["max_submissions"] == 3
    assert "all 3 submissions for 'nodules'" in limit.message
    # Refusals are Podium's own, not builtins a caller could catch by accident.
    assert not issubclass(errors.BoardHidden, PermissionError)
    assert not issubclass(errors.UnknownChallenge, LookupError)


# -- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture
def strict_server(example_event: Path, database_url: str, tmp_path: Path
                  ) -> Iterator[AppServer]:
    """The example event, edss without a validation set; one upload per team per hour, and
    an upload that sends nothing for a second dropped. Nothing is scored."""
    set_challenge_keys(example_event, "edss", release=None)
    app = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0,
                    config_overrides={"upload_burst": 1, "upload_every_s": 3600.0,
                                      "upload_idle_timeout_s": 1.0}).start()
    yield app
    app.stop()


def _error(answer: tuple[int, Any]) -> tuple[int, str]:
    status, body = answer
    return status, body["error"]["code"]


def test_refusals_without_a_test_of_their_own_reach_the_client(strict_server: AppServer
                                                               ) -> None:
    server = strict_server
    tokens = server.tokens()
    csv = b"id,probability\nNOD001,0.5\n"
    server.act("nodules", "start")

    # A bad ?wait is refused before anything is stored.
    assert _error(server.upload("nodules", tokens["Lumbar Lab"], "p.csv", csv,
                                "?wait=soon")) == (400, "bad_wait")
    assert server.json("GET", "/api/v1/challenges/nodules/submissions",
                       tokens["Lumbar Lab"]) == (200, [])

    # One upload an hour: the second is refused, with when to try again.
    assert server.upload("nodules", tokens["Lumbar Lab"], "p.csv", csv)[0] == 202
    status, body = server.upload("nodules", tokens["Lumbar Lab"], "p.csv", csv)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert body["error"]["retry_after_s"] > 0 and "try again in" in body["error"]["message"]

    assert _error(server.json("GET", "/api/v1/challenges/nodules/reveal?step=two",
                              tokens["jury"])) == (400, "bad_step")
    status, _, body = server.request("GET", "/api/v1/challenges/edss/dataset",
                                     tokens["Myelin Minds"])
    assert (status, json.loads(body)["error"]["code"]) == (404, "no_release")

    # The console's name for the log: a browser's session, and a name in it.
    _, headers, _ = login(server, tokens["organizer"])
    status, _, body = raw(server, "POST", "/api/v1/operator", b'{"name": "  "}',
                          {"Content-Type": "application/json",
                           **cookie_header(session_cookie(headers)[1])})
    assert (status, json.loads(body)["error"]["code"]) == (400, "bad_name")

    # Anonymous, a board shown to the jury asks for a token and says whose board it is.
    status, body = server.json("GET", "/api/v1/challenges/nodules/leaderboard")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert "shown to the jury and organizers" in body["error"]["message"]
    assert _error(server.json("GET", "/api/v1/challenges/lungs/leaderboard",
                              tokens["jury"])) == (404, "unknown_challenge")
    # The same refusals met on the websocket.
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "subscribe",
                            "channels": ["leaderboard:nodules", "leaderboard:lungs"]}))
        hidden, unknown = (json.loads(ws.recv(timeout=10)) for _ in range(2))
    assert (hidden["error"]["code"], hidden["channel"]) == ("forbidden", "leaderboard:nodules")
    assert (unknown["error"]["code"], unknown["channel"]) == ("unknown_channel",
                                                              "leaderboard:lungs")


def test_an_upload_that_stalls_is_dropped_with_408(strict_server: AppServer) -> None:
    server = strict_server
    server.act("nodules", "start")
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    head = (f"POST /api/v1/challenges/nodules/submissions HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {server.tokens()['Nodule Hunters']}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n"
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.csv\"\r\n\r\n"
            "id,probability\n")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "upload_timeout" and "send it again" in error["message"]


def test_a_page_shows_the_refusal_in_words(server: AppServer) -> None:
    status, _, html = server.request("GET", "/board?challenge=lungs",
                                     headers={"Accept": "text/html"})
    page = html.decode()
    assert status == 404 and 'data-code="unknown_challenge"' in page
    assert "no challenge &#39;lungs&#39;; challenges: sarcopenia, nodules, edss" in page
    assert "Traceback" not in page
