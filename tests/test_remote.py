"""The server as the commands reach it (server/remote.py): addresses checked, the scheme
settled with the server (http assumed, https when it answers so), its certificates trusted."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.command import ExitCode, UsageError
from server.remote import server_address, server_url
from tests.command_line import NODULES_CSV, podium, start
from tests.helpers import AppServer


@pytest.fixture(autouse=True)
def _no_podium_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    monkeypatch.delenv("PODIUM_SERVER", raising=False)


def test_server_addresses_are_checked() -> None:
    assert server_url("http://10.0.0.5:8080/") == "http://10.0.0.5:8080"
    assert server_url("https://podium.example/jfr/") == "https://podium.example/jfr"
    # No scheme: http is assumed (and marked so, to be settled with the server).
    assert server_address("10.0.0.5:8080") == ("http://10.0.0.5:8080", True)
    assert server_address(" podium.example/jfr/ ") == ("http://podium.example/jfr", True)
    assert server_address("https://podium.example") == ("https://podium.example", False)
    for bad in (None, "", "ftp://host", "http://", "http://host:port", "10.0.0.5:port"):
        with pytest.raises(UsageError):
            server_url(bad)


# -- addresses without a scheme ---------------------------------------------------------------

def test_a_server_given_without_scheme_is_reached_over_http(
        server: AppServer, capsys: pytest.CaptureFixture[str]) -> None:
    start(server, "nodules")
    bare = server.url.removeprefix("http://")
    code = podium("submit", "--server", bare, "--token", server.tokens()["Lumbar Lab"],
                  "--challenge", "nodules", str(NODULES_CSV))
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert out.startswith("receipt: submission ")
    # The receipt is read in the event's zone, named, beside the API's UTC.
    _, mine = server.json("GET", "/api/v1/challenges/nodules/submissions",
                          server.tokens()["Lumbar Lab"])
    received = mine[0]["received_at"]
    paris = datetime.fromisoformat(received.replace("Z", "+00:00")).astimezone(
        ZoneInfo("Europe/Paris")).strftime("%H:%M:%S")
    assert f"received_at  {paris} Europe/Paris ({received})" in out


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr[-200:]}")
    return cert, key


def test_a_server_given_without_scheme_that_speaks_tls_is_reached_over_https(
        example_event: Path, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the venue's own authority
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = AppServer(example_event, tmp_path / "data", database_url,
                       ssl_context=context).start()

    async def redirector() -> tuple[Any, str]:
        # A front that sends plain HTTP to https, as venues' reverse proxies do.
        from aiohttp import web

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPPermanentRedirect(server.url + request.path_qs)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", moved)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"127.0.0.1:{runner.addresses[0][1]}"

    try:
        assert server.url.startswith("https://")
        start(server, "nodules")
        tokens = server.tokens()
        tls_port = server.url.removeprefix("https://")
        code = podium("submit", "--server", tls_port, "--token", tokens["Lumbar Lab"],
                      "--challenge", "nodules", str(NODULES_CSV))
        out, err = capsys.readouterr()
        assert code == ExitCode.OK, err
        assert out.startswith("receipt: submission ")

        loop = asyncio.new_event_loop()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            runner, front = pool.submit(loop.run_until_complete, redirector()).result()
            thread = pool.submit(loop.run_forever)
            try:
                code = podium("watch", "--server", front, "--token", tokens["jury"],
                              "--challenge", "nodules", "--once")
                out, err = capsys.readouterr()
                assert code == ExitCode.OK, err
                assert f"Podium · {server.url}" in out and "Lumbar Lab" in out
            finally:
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
                loop.call_soon_threadsafe(loop.stop)
                thread.result(30)
                loop.close()
    finally:
        server.stop()
