"""The centers' digest (docs/centers.md#the-digest): twice a week (the seed's newsletter), what
happened to a center's exams since the last one — received, kept, excluded and why, the
violations it has to act on, the experts' grades and comments, its progress per question — as
an HTML page (`GET /center/digest`) and as an e-mail through the configured SMTP server.

A digest is due at 08:00 in the event's time zone on each of `digest_days` (default Monday
and Thursday), by the database's clock (`podium_now()`). Each one is a row of `digest`
(migration 0014), written before it is sent and marked sent in the transaction that holds it
(`FOR UPDATE SKIP LOCKED`): never sent twice, by one server or two; one a crash or an SMTP
failure interrupted is sent again on the next tick, after a restart too. The mail goes out
with the standard library's smtplib in a thread: the event loop never waits for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import jinja2
from aiohttp import web

from server.command import UsageError
from server.config import Config
from server.event import EventSpec
from server.inclusion.live import exams_json
from server.keys import CONFIG, EVENT, POOL, TEMPLATES
from server.queries import database_now
from server.store import exams as store
from server.store import inclusion_tables as tables

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DUE_AT = time(8, 0)       # local time of the event's zone
TICK_S = 2.0              # how often due digests are looked for (one indexed query)
MAX_TRIES = 30            # SMTP failures before a digest is given up (state stays 'failed')
RETRY_S = 60              # between two tries
SMTP_TIMEOUT_S = 30.0


def parse_days(text: str) -> tuple[int, ...]:
    """`digest_days` ("mon,thu") as weekday numbers (Monday 0); a usage error otherwise."""
    names = [part.strip().lower()[:3] for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in DAYS]
    if not names or unknown:
        raise UsageError(f"--digest-days must list days among {', '.join(DAYS)} (e.g. "
                         f"mon,thu), got {text!r}")
    return tuple(sorted({DAYS.index(n) for n in names}))


def last_due(now: datetime, days: tuple[int, ...], zone: ZoneInfo) -> datetime:
    """The latest digest moment at or before `now` (08:00 local on a digest day)."""
    local = now.astimezone(zone)
    for back in range(8):
        day: date = local.date() - timedelta(days=back)
        if day.weekday() in days:
            moment = datetime.combine(day, DUE_AT, tzinfo=zone)
            if moment <= local:
                return moment.astimezone(now.tzinfo)
    raise AssertionError("a digest day comes every week")


def previous_due(due: datetime, days: tuple[int, ...], zone: ZoneInfo) -> datetime:
    return last_due(due - timedelta(seconds=1), days, zone)


@dataclass
class Digest:
    """What one digest says, for one center: what happened after `since`, until `until`
    included (so a change at a digest's very moment is in that digest, not the next)."""

    center_id: int
    center: str
    since: datetime
    until: datetime
    received: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    to_act_on: list[dict[str, Any]] = field(default_factory=list)  # exams with open violations
    grades: list[dict[str, Any]] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing happened and nothing waits for the center: no mail is worth sending."""
        return not (self.received or self.kept or self.excluded or self.to_act_on
                    or self.grades)

    @property
    def subject(self) -> str:
        parts = [f"{len(self.received)} received", f"{len(self.kept)} kept",
                 f"{len(self.excluded)} excluded"]
        if self.to_act_on:
            parts.append(f"{len(self.to_act_on)} to act on")
        return f"Podium digest for {self.center}: " + ", ".join(parts)


async def gather(conn: asyncpg.Connection, center_id: int, since: datetime,
                 until: datetime) -> Digest:
    center = await conn.fetchval("SELECT name FROM center WHERE id = $1", center_id)
    digest = Digest(center_id, center, since, until)
    # The exams something happened to in the period, or with a violation still open.
    ids = [r["id"] for r in await conn.fetch(
        """SELECT DISTINCT e.id FROM exam e
           LEFT JOIN exam_event x ON x.exam_id = e.id AND x.at > $2 AND x.at <= $3
           LEFT JOIN violation v ON v.exam_id = e.id AND v.severity = 'violation'
                AND v.state IN ('open', 'notified') AND e.stage = 'checked'
           LEFT JOIN review r ON r.exam_id = e.id AND r.graded_at > $2 AND r.graded_at <= $3
           WHERE e.center_id = $1 AND (x.id IS NOT NULL OR v.id IS NOT NULL
                                       OR r.id IS NOT NULL)""", center_id, since, until)]
    wanted = set(ids)
    exams = [e for e in await store.exams(conn, center_id=center_id, limit=1_000_000)
             if e.id in wanted]  # newest first
    shown = await exams_json(conn, exams)
    events = {(r["exam_id"], r["kind"]) for r in await conn.fetch(
        """SELECT DISTINCT exam_id, kind FROM exam_event
           WHERE exam_id = ANY($1::bigint[]) AND at > $2 AND at <= $3""", ids, since, until)}
    for exam in shown:
        if (exam["id"], "received") in events:
            digest.received.append(exam)
        if exam["stage"] == "kept" and (exam["id"], "kept") in events:
            digest.kept.append(exam)
        if exam["stage"] == "excluded" and ((exam["id"], "excluded") in events
                                            or (exam["id"], "resent") in events):
            digest.excluded.append(exam)
        if exam["stage"] == "checked" and any(f["blocking"] for f in exam["findings"]):
            digest.to_act_on.append(exam)
    labels = {e["id"]: e for e in shown}
    for r in await conn.fetch(
            """SELECT exam_id, reading, grade, comment, graded_at FROM review
               WHERE exam_id = ANY($1::bigint[]) AND graded_at > $2 AND graded_at <= $3
               ORDER BY graded_at DESC, id DESC""", ids, since, until):
        exam = labels[r["exam_id"]]
        digest.grades.append({"exam": exam["id"], "label": exam["label"],
                              "challenge": exam["challenge"], "reading": r["reading"],
                              "grade": r["grade"], "comment": r["comment"],
                              "graded_at": r["graded_at"]})
    questions = {q.challenge: q for q in await tables.question_table(conn)}
    for row in await tables.center_table(conn, center_id=center_id):
        question = questions.get(row.challenge)
        digest.progress.append({
            **row.to_json(), "title": question.title if question else row.challenge,
            "question_kept": question.tally.kept if question else 0,
            "wanted": question.wanted if question else 0,
            "wanted_percent": min(100, round(100 * question.progress)) if question else 0})
    return digest


async def last_digest(conn: asyncpg.Connection, center_id: int) -> datetime | None:
    """The moment of the center's last digest sent (or found empty)."""
    found: datetime | None = await conn.fetchval(
        "SELECT max(due_at) FROM digest WHERE center_id = $1 AND state IN ('sent', 'empty')",
        center_id)
    return found


def render(templates: jinja2.Environment, digest: Digest, event: EventSpec,
           portal: str) -> tuple[str, str]:
    """The mail's HTML and text parts."""
    context = {"digest": digest, "event": event, "portal": portal}
    html = templates.get_template("digest_mail.html").render(**context)
    text = templates.get_template("digest_mail.txt").render(**context)
    return html, text


def message(digest: Digest, sender: str, to: tuple[str, ...], html: str, text: str
            ) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = digest.subject
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Message-ID"] = make_msgid(domain="podium")
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    return mail


def send_mail(host: str, port: int, mail: EmailMessage) -> None:
    """Blocking: run it in a thread."""
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S) as smtp:
        smtp.send_message(mail)


class Digests:
    """The background task that sends the digests due (one per app)."""

    def __init__(self, pool: asyncpg.Pool, config: Config, event: EventSpec,
                 templates: jinja2.Environment) -> None:
        self.pool, self.config, self.event, self.templates = pool, config, event, templates
        self.days = parse_days(config.digest_days)
        self.zone = ZoneInfo(event.timezone)
        self.sent = 0

    async def run(self) -> None:
        while True:
            try:
                await self.send_due()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("sending the digests failed; trying again")
            await asyncio.sleep(TICK_S)

    async def send_due(self) -> int:
        """Sends every digest due now and not sent yet; returns how many were sent."""
        if not self.config.smtp_host:
            return 0
        mailed = {c.name: c.email for c in self.event.centers if c.email}
        if not mailed:
            return 0
        sent = 0
        async with self.pool.acquire() as conn:
            now = await database_now(conn)
            due = last_due(now, self.days, self.zone)
            centers = await conn.fetch(
                "SELECT id, name FROM center WHERE in_event AND name = ANY($1::text[])",
                list(mailed))
            for center in centers:
                if await self._send(conn, center["id"], mailed[center["name"]], due):
                    sent += 1
        self.sent += sent
        return sent

    async def _send(self, conn: asyncpg.Connection, center_id: int, to: tuple[str, ...],
                    due: datetime) -> bool:
        since = await last_digest(conn, center_id) or previous_due(due, self.days, self.zone)
        await conn.execute(
            """INSERT INTO digest (center_id, due_at, since, recipient) VALUES ($1, $2, $3, $4)
               ON CONFLICT (center_id, due_at) DO NOTHING""",
            center_id, due, since, ", ".join(to))
        async with conn.transaction():
            row = await conn.fetchrow(
                """SELECT id, since FROM digest WHERE center_id = $1 AND due_at = $2
                     AND (state = 'pending' OR (state = 'failed' AND tries < $3
                          AND tried_at < podium_now() - make_interval(secs => $4)))
                   FOR UPDATE SKIP LOCKED""", center_id, due, MAX_TRIES, RETRY_S)
            if row is None:
                return False  # sent, empty, given up, or being sent by another server
            digest = await gather(conn, center_id, row["since"], due)
            if digest.empty:
                await conn.execute("UPDATE digest SET state = 'empty' WHERE id = $1", row["id"])
                return False
            html, text = render(self.templates, digest, self.event,
                                f"{self.config.public_url}/center")
            mail = message(digest, self.config.smtp_from, to, html, text)
            assert self.config.smtp_host is not None
            try:
                await asyncio.to_thread(send_mail, self.config.smtp_host,
                                        self.config.smtp_port, mail)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("the digest for center %s was not sent: %s", digest.center, exc)
                await conn.execute(
                    """UPDATE digest SET state = 'failed', tries = tries + 1, error = $2,
                       tried_at = podium_now() WHERE id = $1""", row["id"], str(exc)[:500])
                return False
            await conn.execute(
                """UPDATE digest SET state = 'sent', tries = tries + 1, error = NULL,
                       tried_at = podium_now(), sent_at = podium_now() WHERE id = $1""",
                row["id"])
            # The digest showed the center its open violations.
            await store.mark_notified(conn, center_id)
        log.info("digest sent to center %s (%s)", digest.center, ", ".join(to))
        return True


def setup(app: web.Application) -> None:
    """The digest task, owned by the app (started after the pool, cancelled before it
    closes). A bad `digest_days` refuses to start."""
    parse_days(app[CONFIG].digest_days)

    async def task(app: web.Application) -> AsyncIterator[None]:
        digests = Digests(app[POOL], app[CONFIG], app[EVENT], app[TEMPLATES])
        app[DIGESTS] = digests
        running = asyncio.create_task(digests.run(), name="digests")
        yield
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    app.cleanup_ctx.append(task)


DIGESTS = web.AppKey("digests", Digests)
