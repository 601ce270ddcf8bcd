"""server/inclusion/digest.py: a center's digest as a page and as an e-mail sent to a real SMTP
server (aiosmtpd), by the background task when the database's clock reaches a digest moment;
never twice, not after a restart either."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from server.app import create_app
from server.command import UsageError
from server.config import Config
from server.event import parse_event
from server.inclusion import digest as digests
from server.keys import CONFIG, EVENT, POOL, TEMPLATES
from server.store import exams as store
from tests.helpers import (
    EXAMPLE_EVENT,
    AppServer,
    DatabaseClock,
    load_event_into,
    run,
    wait_for,
)

PARIS = ZoneInfo("Europe/Paris")
# Tuesday 8 December 2026, 10:00 UTC: after Monday's digest, before Thursday's.
TUESDAY = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
THURSDAY_8H = datetime(2026, 12, 10, 8, 0, tzinfo=PARIS)
THICK = {"code": "slice_thickness", "rule": "slice_thickness_mm", "severity": "violation",
         "message": "slice thickness 2.5 mm; this question needs < 1.25 mm"}


class Inbox:
    """aiosmtpd's handler: every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content,
                                                       policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_digest_moments() -> None:
    days = digests.parse_days("mon,thu")
    assert days == (0, 3)
    assert digests.parse_days(" Thursday , MON") == (0, 3)
    with pytest.raises(UsageError, match="--digest-days must list days"):
        digests.parse_days("mon,funday")
    # The server refuses to start on it, before it serves anything.
    with pytest.raises(UsageError, match="got 'sometimes'"):
        create_app(Config(event_path=EXAMPLE_EVENT, digest_days="sometimes"),
                   parse_event(EXAMPLE_EVENT))
    wednesday = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
    assert digests.last_due(wednesday, days, PARIS) == datetime(2026, 12, 7, 8, 0,
                                                                tzinfo=PARIS)
    # Thursday 07:59 Paris: still Monday's; 08:00: Thursday's.
    assert digests.last_due(THURSDAY_8H - timedelta(minutes=1), days, PARIS).day == 7
    assert digests.last_due(THURSDAY_8H, days, PARIS) == THURSDAY_8H
    assert digests.previous_due(THURSDAY_8H, days, PARIS).day == 7


def text_and_html(message: Message) -> tuple[str, str]:
    parts = {part.get_content_type(): part.get_content()
             for part in message.walk() if not part.is_multipart()}
    return parts["text/plain"], parts["text/html"]


def test_the_digest_is_mailed_once_when_due_and_shown_on_the_center_page(
        example_event: Path, database_url: str, tmp_path: Path, clock: DatabaseClock,
        smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    data = tmp_path / "data"
    run(load_event_into(database_url, example_event, data))
    clock.freeze(TUESDAY)
    server = AppServer(example_event, data, database_url, scoring_workers=0,
                       config_overrides={"smtp_host": "127.0.0.1", "smtp_port": port,
                                         "smtp_from": "Podium <podium@jfr.example>"}).start()
    try:
        tokens = server.tokens()

        async def fixture() -> None:
            async with server.app[POOL].acquire() as conn:
                lyon = await conn.fetchval("SELECT id FROM center WHERE name = 'CHU de Lyon'")
                reviewer = await conn.fetchval("SELECT id FROM reviewer WHERE name = 'Dr Martin'")
                sent = []
                for key in ("thorax-07", "l3-slice-12", "l3-slice-13"):
                    sent.append(await store.create(
                        conn, center_id=lyon, challenge="nodules-3d" if key[0] == "t"
                        else "sarcopenia", channel="web", label=f"{key}.zip", source_key=key,
                        message="received by the web"))
                await store.checked(conn, sent[0], [THICK], {}, "criteria checked")
                await store.checked(conn, sent[1], [], {}, "criteria checked")
                await conn.execute(
                    """INSERT INTO review (exam_id, reviewer_id, reading, grade, comment)
                       VALUES ($1, $2, 1, 'B', 'psoas cut at the edge; acceptable')""",
                    sent[1], reviewer)
                await store.keep(conn, sent[1], "B", "kept: class B")
                await store.exclude(conn, sent[2], store.Exclusion.DEIDENTIFICATION,
                                    "burned-in patient name on the image")
        server.call(fixture())

        # The page: what the next digest will say (since Monday's, which had nothing).
        status, _, html = server.request("GET", "/center/digest", tokens["CHU de Lyon"])
        page = html.decode()
        assert status == 200 and "Digest for CHU de Lyon" in page
        assert "thorax-07.zip" in page and "slice thickness 2.5 mm" in page
        assert "psoas cut at the edge" in page and "burned-in patient name" in page
        status, _, html = server.request("GET", "/center/digest?center=CHU%20de%20Lyon",
                                         tokens["organizer"])
        assert status == 200 and "thorax-07.zip" in html.decode()
        status, _, html = server.request("GET", "/center/digest?center=CHU%20de%20Lyon",
                                         tokens["CHU de Bordeaux"])
        assert status == 200 and "thorax-07.zip" not in html.decode()  # its own, always
        status, _, html = server.request("GET", "/center/digest?center=Nowhere",
                                         tokens["organizer"])
        assert status == 404 and 'data-code="unknown_center"' in html.decode()
        assert inbox.messages == []  # Monday's had nothing to say: no mail

        clock.freeze(THURSDAY_8H.astimezone(UTC) + timedelta(seconds=5))
        wait_for(lambda: inbox.messages, what="Thursday's digest in the SMTP server's inbox")

        async def thursday_state() -> Any:
            async with server.app[POOL].acquire() as conn:
                return await conn.fetchval("SELECT state FROM digest WHERE due_at = $1",
                                           THURSDAY_8H)
        # Recorded as sent once the SMTP server has taken it, a moment after it arrived.
        wait_for(lambda: server.call(thursday_state()) == "sent", what="the digest recorded")
        (mail,) = inbox.messages
        assert inbox.recipients == [["imagerie@chu-lyon.example"]]
        assert mail["From"] == "Podium <podium@jfr.example>"
        # (A subject this long is folded after "Subject:"; the space before it is the fold's.)
        assert mail["Subject"].strip() == ("Podium digest for CHU de Lyon: 3 received, 1 kept, "
                                   "1 excluded, 1 to act on")
        text, html_part = text_and_html(mail)
        for part in (text, re.sub(r"<[^>]+>", "", html_part)):
            assert "thorax-07.zip (nodules-3d): slice thickness 2.5 mm" in part
            assert "l3-slice-12.zip (sarcopenia): class B" in part
            assert "psoas cut at the edge; acceptable" in part
            assert "burned-in patient name on the image" in part
            assert "Tue 08 Dec 2026, 11:00" in part       # received, in Paris time
            assert f"{server.app[CONFIG].public_url}/center" in part
        assert "<li><strong>thorax-07.zip</strong>" in html_part and "<li>" not in text
        assert text.startswith("JFR 2019") and "\n>" not in text  # no line escaped

        # Never twice: neither this server nor one restarted on the same database.
        assert server.call(server.app[digests.DIGESTS].send_due()) == 0
        restarted = digests.Digests(server.app[POOL], server.app[CONFIG], server.app[EVENT],
                                    server.app[TEMPLATES])
        assert server.call(restarted.send_due()) == 0
        assert len(inbox.messages) == 1

        async def recorded() -> list[Any]:
            async with server.app[POOL].acquire() as conn:
                rows = await conn.fetch("SELECT state, due_at FROM digest ORDER BY due_at")
                states = await conn.fetch("SELECT state FROM violation")
            return [(r["state"], r["due_at"]) for r in rows] + [r["state"] for r in states]
        assert server.call(recorded()) == [
            ("empty", datetime(2026, 12, 7, 8, 0, tzinfo=PARIS)),
            ("sent", THURSDAY_8H), "notified"]  # the digest told the center
    finally:
        server.stop()


def test_a_digest_due_while_the_smtp_server_is_down_is_sent_once_when_it_is_back(
        example_event: Path, database_url: str, tmp_path: Path, clock: DatabaseClock) -> None:
    """At Thursday 08:00 nothing listens on the SMTP port: the digest is recorded as failed,
    not lost. A real aiosmtpd server comes up on that port; the retry waits RETRY_S by the
    database's clock (moved by the test, never waited for), then the digest goes out once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "data"
    run(load_event_into(database_url, example_event, data))
    clock.freeze(TUESDAY)
    server = AppServer(example_event, data, database_url, scoring_workers=0,
                       config_overrides={"smtp_host": "127.0.0.1", "smtp_port": port,
                                         "smtp_from": "podium@jfr.example"}).start()
    controller: Controller | None = None
    try:
        async def fixture() -> None:
            async with server.app[POOL].acquire() as conn:
                lyon = await conn.fetchval("SELECT id FROM center WHERE name = 'CHU de Lyon'")
                await store.create(conn, center_id=lyon, challenge="sarcopenia", channel="web",
                                   label="l3-slice-40.zip", source_key="l3-40",
                                   message="received by the web")
        server.call(fixture())

        async def thursday() -> Any:
            async with server.app[POOL].acquire() as conn:
                return await conn.fetchrow(
                    "SELECT state, tries, error FROM digest WHERE due_at = $1", THURSDAY_8H)

        due = THURSDAY_8H.astimezone(UTC) + timedelta(seconds=5)
        clock.freeze(due)
        wait_for(lambda: (row := server.call(thursday())) is not None
                 and row["state"] == "failed", what="the digest's first try, failed")
        failed = server.call(thursday())
        assert failed["tries"] == 1 and failed["error"]

        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        # Back, but the retry's delay has not passed on the database's clock: not yet.
        clock.freeze(due + timedelta(seconds=digests.RETRY_S // 2))
        assert server.call(server.app[digests.DIGESTS].send_due()) == 0
        assert inbox.messages == [] and server.call(thursday())["tries"] == 1

        clock.freeze(due + timedelta(seconds=digests.RETRY_S + 1))
        # Recorded as sent once the SMTP server has taken it (the message is in the inbox
        # a moment before the row says so).
        sent = wait_for(lambda: (row := server.call(thursday()))["state"] == "sent" and row,
                        what="the digest, retried once the server is back")
        assert (sent["state"], sent["tries"], sent["error"]) == ("sent", 2, None)
        assert len(inbox.messages) == 1
        assert "l3-slice-40.zip" in text_and_html(inbox.messages[0])[0]
        clock.freeze(due + timedelta(seconds=3 * digests.RETRY_S))
        assert server.call(server.app[digests.DIGESTS].send_due()) == 0
        assert len(inbox.messages) == 1
    finally:
        server.stop()
        if controller is not None:
            controller.stop()
