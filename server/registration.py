"""Teams that register themselves (docs/registration.md): the public page, the rules every
application is checked against, and the organizers' approval that issues the team's token.

The rules are a pure core (`check_application`, `phase_at`): no I/O, tested directly. What needs
the database — a name already taken, a person already in a team for a question — is the
store's (server/store/registrations.py), held by PostgreSQL's own constraints.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from server import queries
from server.access import Role
from server.auth import principal_of, public, requires, session_id
from server.errors import (
    BadJson,
    CharterOutdated,
    RateLimited,
    RegistrationClosed,
    RegistrationInvalid,
    RegistrationsFull,
    RegistrationTooLarge,
    UnknownRegistration,
)
from server.event import AFFILIATION_KINDS, EMAIL_RE, MEMBER_ROLES, EventSpec, RegistrationSpec
from server.isotime import iso
from server.keys import EVENT, POOL
from server.store import registrations as store
from server.store.sessions import operator_of

FORM_BYTES = 32 * 1024
FORM_TIMEOUT_S = 10.0
# Applications waiting at once: past this the public form refuses, so a hostile visitor cannot
# fill the database (each one is at most FORM_BYTES).
MAX_WAITING = 300
NAME_CHARS = 120
ROLE_LABELS = {"radiologist": "radiologist", "data-scientist": "data scientist or student",
               "researcher": "researcher", "engineer": "engineer"}
KIND_LABELS = {"lab": "research lab", "company": "company", "other": "other"}


# -- the rules (pure) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    name: str
    email: str
    role: str
    affiliation: str
    kind: str


@dataclass(frozen=True)
class Application:
    team: str
    members: tuple[Member, ...]
    challenges: tuple[str, ...]
    charter_version: str


def phase_at(rules: RegistrationSpec, now: datetime) -> str:
    """`before`, `open` (opens ≤ now < closes) or `closed`."""
    if now < rules.opens:
        return "before"
    return "open" if now < rules.closes else "closed"


def _text(value: Any, where: str, what: str, limit: int = NAME_CHARS) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RegistrationInvalid(where, f"{what} is missing")
    text = " ".join(value.split())
    if len(text) > limit:
        raise RegistrationInvalid(where, f"{what} is longer than {limit} characters")
    return text


def _member(raw: Any, index: int) -> Member:
    where = f"members[{index}]"
    label = f"member {index + 1}"
    if not isinstance(raw, dict):
        raise RegistrationInvalid(where, f"{label} is not a member (name, e-mail, role, "
                                  "affiliation)")
    name = _text(raw.get("name"), f"{where}.name", f"{label}'s name")
    label = f"member {index + 1} ({name})"
    email = _text(raw.get("email"), f"{where}.email", f"{label}'s e-mail", 254)
    if not EMAIL_RE.match(email):
        raise RegistrationInvalid(f"{where}.email", f"{label}'s e-mail {email!r} is not an "
                                  "address such as name@lab.example")
    role = raw.get("role")
    if role not in MEMBER_ROLES:
        raise RegistrationInvalid(f"{where}.role", f"{label}'s role must be one of: "
                                  f"{', '.join(ROLE_LABELS[r] for r in MEMBER_ROLES)}")
    affiliation = _text(raw.get("affiliation"), f"{where}.affiliation",
                        f"{label}'s affiliation", 160)
    kind = raw.get("kind")
    if kind not in AFFILIATION_KINDS:
        raise RegistrationInvalid(f"{where}.kind", f"{label}'s affiliation must be a research "
                                  "lab, a company or other")
    return Member(name, email, str(role), affiliation, str(kind))


def check_application(form: Any, rules: RegistrationSpec, questions: Sequence[str]
                      ) -> Application:
    """The form as the rules accept it, or the first rule it breaks (RegistrationInvalid
    naming the field, CharterOutdated). `questions`: the event's challenge slugs."""
    if not isinstance(form, dict):
        raise RegistrationInvalid("form", "the registration is not a form of fields")
    team = _text(form.get("team"), "team", "the team's name", 80)
    raw_members = form.get("members")
    if not isinstance(raw_members, list):
        raise RegistrationInvalid("members", "the team has no members")
    count = len(raw_members)
    if not rules.min_members <= count <= rules.max_members:
        raise RegistrationInvalid("members", f"a team has {rules.min_members} to "
                                  f"{rules.max_members} members; this one has {count}")
    members = tuple(_member(raw, i) for i, raw in enumerate(raw_members))
    seen: dict[str, int] = {}
    for index, member in enumerate(members):
        key = member.email.casefold()
        if key in seen:
            raise RegistrationInvalid(f"members[{index}].email",
                                      f"member {index + 1} ({member.name}) has the e-mail of "
                                      f"member {seen[key] + 1}; one person is one member")
        seen[key] = index
    for role in rules.required_roles:
        if not any(m.role == role for m in members):
            raise RegistrationInvalid("members", f"the team needs at least one "
                                      f"{ROLE_LABELS[role]} among its members")
    if rules.required_affiliations and not any(
            m.kind in rules.required_affiliations for m in members):
        kinds = " or a ".join(KIND_LABELS[k] for k in rules.required_affiliations)
        raise RegistrationInvalid("members", f"the team needs a member from a {kinds}")
    chosen = form.get("challenges")
    if not isinstance(chosen, list) or not chosen:
        raise RegistrationInvalid("challenges", "choose at least one question")
    for slug in chosen:
        if slug not in questions:
            raise RegistrationInvalid("challenges", f"there is no question {slug!r}; the "
                                      f"questions are: {', '.join(questions)}")
    if len(set(chosen)) != len(chosen):
        raise RegistrationInvalid("challenges", "a question is chosen twice")
    if form.get("charter_accepted") is not True:
        raise RegistrationInvalid("charter", "the charter must be read and accepted")
    version = form.get("charter_version")
    if not isinstance(version, str) or version != rules.charter_version:
        raise CharterOutdated(str(version), rules.charter_version)
    return Application(team, members, tuple(str(s) for s in chosen), version)


# -- Markdown, safely --------------------------------------------------------------------------

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
]
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|mailto:|/|#|[\w.-]+(/|$))", re.IGNORECASE)


def _inline(text: str) -> str:
    """One line: escaped first, then code, bold, italics and links to safe addresses only."""
    out = html.escape(text, quote=True)

    def link(m: re.Match[str]) -> str:
        target = html.unescape(m.group(2))
        if not _SAFE_URL.match(target) or target.lower().startswith(("javascript", "data")):
            return m.group(1)
        return f'<a href="{html.escape(target, quote=True)}" rel="noopener">{m.group(1)}</a>'

    out = _LINK.sub(link, out)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def render_markdown(source: str) -> str:
    """The Markdown of the event's pages as HTML: headings, paragraphs, lists, code blocks,
    emphasis and links. Raw HTML is never passed through: every character is escaped."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""
    code: list[str] | None = None

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            blocks.append(f"<p>{' '.join(_inline(p) for p in paragraph)}</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{list_tag}>" + "".join(f"<li>{i}</li>" for i in items)
                          + f"</{list_tag}>")
            items.clear()
            list_tag = ""

    for line in source.splitlines():
        if code is not None:
            if line.strip().startswith("```"):
                blocks.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
        elif not stripped:
            flush()
        elif m := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            level = min(len(m.group(1)) + 1, 6)  # the page's own title is the h1
            blocks.append(f"<h{level}>{_inline(m.group(2).rstrip('#').strip())}</h{level}>")
        elif m := re.match(r"^([-*+]|\d+[.)])\s+(.*)$", stripped):
            tag = "ol" if m.group(1)[0].isdigit() else "ul"
            if paragraph or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append(_inline(m.group(2)))
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + _inline(stripped)
        else:
            if items:
                flush()
            paragraph.append(stripped)
    if code is not None:
        blocks.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
    flush()
    return "\n".join(blocks)


def page_title(source: str, fallback: str) -> str:
    """A page's first heading, else its file's name."""
    for line in source.splitlines():
        if m := re.match(r"^#{1,6}\s+(.*)$", line.strip()):
            return m.group(1).strip()
    return fallback


# -- the public page and form -----------------------------------------------------------------

@dataclass
class VisitorLimiter:
    """A token bucket per visitor address, per process: `burst` forms, then one per `every_s`.
    The table is bounded: past `max_visitors` the oldest entries are forgotten."""

    burst: int = 5
    every_s: float = 60.0
    max_visitors: int = 10_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, visitor: str, now: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(visitor, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) / self.every_s)
        if len(self._buckets) >= self.max_visitors:
            del self._buckets[next(iter(self._buckets))]
        if tokens < 1:
            self._buckets[visitor] = (tokens, now)
            return (1 - tokens) * self.every_s
        self._buckets[visitor] = (tokens - 1, now)
        return 0.0


VISITORS = web.AppKey("registration_visitors", VisitorLimiter)


def _rules(event: EventSpec) -> RegistrationSpec:
    if event.registration is None:
        raise web.HTTPNotFound(text="this event takes no registrations: its teams are "
                                    "declared by the organizers")
    return event.registration


def _criterion(value: Any) -> str:
    """One criterion's value for people: `min 1, max 5`, `2019-01-01`, `CT, MR`."""
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_criterion(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " or ".join(_criterion(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _criteria(declared: Any) -> list[tuple[str, str]]:
    """An inclusion table's criteria as `key: value` lines for people; a table of tables
    (the clinical fields, the nodules) gives one line per entry."""
    criteria = declared.get("criteria", {}) if isinstance(declared, dict) else {}
    lines = []
    for key, value in criteria.items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            lines += [(f"{key.replace('_', ' ')}: {k.replace('_', ' ')}", _criterion(v))
                      for k, v in value.items()]
        else:
            lines.append((key.replace("_", " "), _criterion(value)))
    return lines


@public
async def register_page(request: web.Request) -> web.Response:
    from server.pages import render

    event = request.app[EVENT]
    rules = _rules(event)
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
    pages = []
    for path in rules.pages:
        text = path.read_text(encoding="utf-8")
        pages.append({"title": page_title(text, path.stem), "html": render_markdown(text)})
    questions = [{"slug": c.slug, "title": c.title,
                  "criteria": _criteria(c.inclusion.declared) if c.inclusion else [],
                  "target": c.inclusion.target if c.inclusion else None}
                 for c in event.challenges]
    response = render(
        request, "register.html", rules=rules, phase=phase_at(rules, now), pages=pages,
        questions=questions, charter=render_markdown(rules.charter.read_text(encoding="utf-8")),
        opens=when(rules.opens, event.timezone), closes=when(rules.closes, event.timezone),
        roles=ROLE_LABELS, kinds=KIND_LABELS)
    response.headers["Cache-Control"] = "no-store"
    return response


def when(moment: datetime, timezone: str) -> str:
    """`2019-09-01 09:00 Europe/Paris`: a date of the timeline, on the event's wall clock."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M ") + timezone


def _visitor(request: web.Request) -> str:
    return request.remote or "unknown"


async def _body(request: web.Request) -> bytes:
    """The form's bytes, read up to the limit (a body sent in pieces, or without a length,
    is counted as it arrives) and within the time allowed."""
    received = bytearray()
    try:
        async with asyncio.timeout(FORM_TIMEOUT_S):
            while chunk := await request.content.read(FORM_BYTES + 1 - len(received)):
                received += chunk
                if len(received) > FORM_BYTES:
                    raise RegistrationTooLarge(FORM_BYTES)
    except TimeoutError:
        raise RegistrationInvalid("form", "the form took too long to arrive") from None
    return bytes(received)


@public
async def submit(request: web.Request) -> web.Response:
    """POST /api/v1/registrations: a team's application, JSON, from the public page."""
    event = request.app[EVENT]
    rules = _rules(event)
    if request.content_length is not None and request.content_length > FORM_BYTES:
        raise RegistrationTooLarge(FORM_BYTES)
    wait = request.app[VISITORS].take(_visitor(request))
    if wait > 0:
        raise RateLimited(wait)
    body = await _body(request)
    try:
        form = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadJson("a registration is a JSON object, as the registration page sends it"
                      ) from None
    async with request.app[POOL].acquire() as conn:
        now = await queries.database_now(conn)
        phase = phase_at(rules, now)
        if phase != "open":
            zone = event.timezone
            raise RegistrationClosed(
                f"registration opens on {when(rules.opens, zone)}; come back then"
                if phase == "before" else
                f"registration closed on {when(rules.closes, zone)}; write to the organizers",
                opens=iso(rules.opens), closes=iso(rules.closes))
        application = check_application(form, rules, [c.slug for c in event.challenges])
        waiting = await store.waiting_count(conn)
        if waiting >= MAX_WAITING:
            raise RegistrationsFull(waiting)
        ident = await store.insert_application(
            conn, application, rules.charter.read_text(encoding="utf-8"))
    return web.json_response({"id": ident, "team": application.team, "state": "waiting"},
                             status=201)


# -- the organizers' side ----------------------------------------------------------------------

def _ident(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 9:
        raise UnknownRegistration(repr(raw))
    return int(raw)


async def _operator(request: web.Request, conn: Any) -> str:
    return await operator_of(conn, session_id(request)) or "organizer"


@requires(Role.ORGANIZER)
async def list_registrations(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await store.applications(conn)
    return web.json_response([store.application_json(r) for r in rows])


@requires(Role.ORGANIZER)
async def approve(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row, token = await store.approve(conn, _ident(request), await _operator(request, conn))
    return _with_token(row, token)


async def _reason(request: web.Request) -> str:
    if not request.can_read_body:
        return ""
    try:
        body = await request.json()
    except ValueError:
        raise BadJson('the body must be a JSON object, e.g. {"reason": "…"}') from None
    if not isinstance(body, dict):
        raise BadJson('the body must be a JSON object, e.g. {"reason": "…"}')
    reason = body.get("reason", "")
    return " ".join(str(reason).split())[:500]


@requires(Role.ORGANIZER)
async def reject(request: web.Request) -> web.Response:
    reason = await _reason(request)
    async with request.app[POOL].acquire() as conn:
        row = await store.reject(conn, _ident(request), await _operator(request, conn), reason)
    return web.json_response(store.application_json(row))


@requires(Role.ORGANIZER)
async def reissue(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row, token = await store.reissue(conn, _ident(request))
    return _with_token(row, token)


@requires(Role.ORGANIZER)
async def revoke(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await store.revoke(conn, _ident(request))
    return web.json_response(store.application_json(row))


def _with_token(row: Any, token: str) -> web.Response:
    # The token is in this answer only: the database keeps its hash.
    response = web.json_response({**store.application_json(row), "token": token})
    response.headers["Cache-Control"] = "no-store"
    return response


@requires(Role.ORGANIZER)
async def console(request: web.Request) -> web.Response:
    from server.pages import render

    async with request.app[POOL].acquire() as conn:
        rows = await store.applications(conn)
    return render(request, "register_console.html",
                  applications=[store.application_json(r) for r in rows],
                  rules=request.app[EVENT].registration, roles=ROLE_LABELS, kinds=KIND_LABELS,
                  viewer=principal_of(request))


def setup(app: web.Application) -> None:
    app[VISITORS] = VisitorLimiter()
    app.router.add_get("/register", register_page)
    app.router.add_get("/organizer/registrations", console)
    app.router.add_post("/api/v1/registrations", submit)
    app.router.add_get("/api/v1/registrations", list_registrations)
    app.router.add_post("/api/v1/registrations/{id}/approve", approve)
    app.router.add_post("/api/v1/registrations/{id}/reject", reject)
    app.router.add_post("/api/v1/registrations/{id}/token", reissue)
    app.router.add_post("/api/v1/registrations/{id}/revoke", revoke)
