"""`podium watch`: the live clocks and boards in a terminal, over the websocket (docs/cli.md).
`WatchState` takes the server's messages one by one and says what to subscribe to; the
render functions turn it into text; `watch` connects, reconnects and redraws. Exit codes:
EXITS["watch"] in server/command.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TextIO
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from server import settings
from server.command import ExitCode, add_parser
from server.remote import Remote, describe, known_zone, parse_time, settle_scheme


class Column(NamedTuple):
    key: str  # in the row's metrics, or the row itself (`score`)
    label: str
    digits: int | None = None  # decimals; None: as many as the value needs
    grouped: bool = False  # thousands separated


def add_command(subparsers: Any) -> None:
    """Registers `watch` on `parser.add_subparsers()`'s result."""
    parser = add_parser(
        subparsers, "watch", help="the live board in a terminal",
        description="Show each challenge's clock and leaderboard, redrawn on every change.")
    settings.add_arguments(parser, Remote, "watch")
    parser.add_argument("--challenge", default=None, metavar="SLUG",
                        help="show this challenge only")
    parser.add_argument("--once", action="store_true",
                        help="print one snapshot and exit")
    parser.set_defaults(handler=watch_command)


CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
ONCE_TIMEOUT_S = 10.0
# For a server whose error messages carry no `channel` field yet (see error_channel).
_CHANNEL_IN_MESSAGE = re.compile(r"'(leaderboard:[^']+)'")


def websocket_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


def backoff_delays(first: float = 0.5, cap: float = 10.0) -> Iterator[float]:
    """0.5, 1, 2, 4, 8, 10, 10, … seconds between reconnection attempts."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def format_remaining(seconds: float) -> str:
    """A countdown: `1:59:58` from an hour up, `09:05` below, never negative."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _clock_time(moment: float, zone: str | None = None) -> str:
    """HH:MM:SS in the event's zone (this machine's when the server does not name one)."""
    return datetime.fromtimestamp(moment, ZoneInfo(zone) if zone else None).strftime("%H:%M:%S")


def remaining_s(challenge: dict[str, Any], offset_s: float, now: float) -> float | None:
    """Seconds left on a running challenge by the server's clock (local `now` + offset), or the
    frozen remaining time of a paused one."""
    deadline = parse_time(challenge.get("deadline"))
    if challenge.get("state") == "running" and deadline is not None:
        return deadline - (now + offset_s)
    value = challenge.get("remaining_s")
    return float(value) if isinstance(value, int | float) else None


def _clock_line(challenge: dict[str, Any], offset_s: float, now: float,
                zone: str | None = None) -> str:
    state = challenge.get("state", "?")
    left = remaining_s(challenge, offset_s, now)
    if state == "waiting":
        duration = challenge.get("duration_s")
        return (f"waiting · {format_remaining(duration)} once started"
                if isinstance(duration, int | float) else "waiting")
    if state == "running" and left is not None:
        deadline = parse_time(challenge.get("deadline"))
        # The server's deadline in the event's zone; without one, this machine's clock at it.
        at = _clock_time(deadline, zone) + f" {zone}" if zone and deadline \
            else _clock_time(deadline - offset_s) if deadline else ""
        until = f" (deadline {at})" if deadline else ""
        return f"running · {format_remaining(left)} left{until}"
    if state == "paused" and left is not None:
        return f"paused · {format_remaining(left)} left, clock stopped"
    return str(state)


def render_board(challenge: dict[str, Any], board: dict[str, Any] | None, offset_s: float,
                 now: float, zone: str | None = None) -> str:
    """One challenge as text: title, state and time left, then its board.

    `challenge` is one entry of a `clock` message; `board` the latest `leaderboard` message for
    it, or the `error` message its subscription got, or None while none came; `offset_s` the
    server's clock minus the local one; `now` the local time (epoch seconds)."""
    slug = challenge.get("slug", "?")
    lines = [f"{challenge.get('title', slug)}  [{slug}]"]
    status = _clock_line(challenge, offset_s, now, zone)
    if board is not None and board.get("type") == "leaderboard" and board.get("frozen"):
        status += "  ❄ FROZEN (board as it stood at the freeze)"
    lines.append(status)
    for extension in challenge.get("extensions") or []:
        left = remaining_s({**extension, "state": extension.get("state")}, offset_s, now)
        shown = format_remaining(left) if left is not None else extension.get("state")
        lines.append(f"  extra time for {extension.get('team')}: {shown} left")
    if challenge.get("extension_s"):
        lines.append(f"  includes your team's extra {format_remaining(challenge['extension_s'])}")

    if board is None:
        lines.append("  (waiting for the board…)")
    elif board.get("type") == "error":
        error = board.get("error") or {}
        code = error.get("code")
        if code == "unknown_channel":
            lines.append(f"  no live board from this server ({code}: {error.get('message')})")
        elif code in ("forbidden", "unauthorized", "invalid_token", "not_visible"):
            lines.append("  board not visible to this token")
        else:
            lines.append(f"  board unavailable ({code}: {error.get('message')})")
    else:
        lines.extend(_board_rows(board_columns(challenge, board), board.get("rows") or [], zone))
    return "\n".join(lines)


def board_columns(challenge: dict[str, Any], board: dict[str, Any]) -> list[Column]:
    """The board's columns: the `columns` the board (or the challenge) carries, each
    `{"key", "label", "digits"?, "grouped"?}`; from a server that sends none, those of this
    Podium's kind of the same name, else the metrics the rows carry."""
    for source in (board, challenge):
        declared = source.get("columns")
        if isinstance(declared, list) and declared:
            return [_column(c) for c in declared if isinstance(c, dict) and "key" in c]
    from server import kinds

    try:
        return [_column(c) for c in kinds.get(str(challenge.get("kind"))).columns()]
    except kinds.UnknownKind:
        rows = board.get("rows") or []
        return [Column(k, k) for k in sorted({k for r in rows for k in (r.get("metrics") or {})})]


def _column(declared: dict[str, Any]) -> Column:
    digits = declared.get("digits")
    return Column(str(declared["key"]), str(declared.get("label") or declared["key"]),
                  digits if isinstance(digits, int) and digits >= 0 else None,
                  bool(declared.get("grouped")))


def _board_rows(columns: list[Column], rows: list[dict[str, Any]],
                zone: str | None = None) -> list[str]:
    if not rows:
        return ["  no teams on this board yet"]
    ranked: list[dict[str, Any]] = []
    unranked: list[dict[str, Any]] = []
    for row in rows:
        valid = row.get("valid", True) and row.get("rank") is not None
        (ranked if valid else unranked).append(row)
    ranked.sort(key=lambda r: (r["rank"], str(r.get("team", "")).lower()))
    ranks = [r["rank"] for r in ranked]
    width = min(28, max(4, *(len(str(r.get("team", ""))) for r in rows)))
    head = f"  {'#':>3}  {'team':<{width}}" + "".join(f"  {c.label:>11}" for c in columns) \
        + f"  {'subs':>4}  counted"
    out = [head]
    for row in ranked:
        rank = f"{row['rank']}{'=' if ranks.count(row['rank']) > 1 else ''}"
        cells = "".join(f"  {_cell(_value(row, c.key), c):>11}" for c in columns)
        out.append(f"  {rank:>3}  {_fit(row.get('team'), width):<{width}}{cells}  "
                   f"{row.get('submissions', 0):>4}  {_counted_at(row.get('received_at'), zone)}")
    for row in unranked:
        cells = "".join(f"  {'-':>11}" for _ in columns)
        out.append(f"  {'-':>3}  {_fit(row.get('team'), width):<{width}}{cells}  "
                   f"{row.get('submissions', 0):>4}  -         no valid submission")
    return out


def _value(row: dict[str, Any], key: str) -> Any:
    metrics = row.get("metrics") or {}
    return metrics[key] if key in metrics else row.get(key)


def _fit(team: Any, width: int) -> str:
    text = str(team or "?")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any, column: Column) -> str:
    if value is None:
        return "-"
    if not isinstance(value, int | float):
        return str(value)
    if column.digits is not None:
        return f"{value:,.{column.digits}f}" if column.grouped else f"{value:.{column.digits}f}"
    if column.key == "score" and float(value).is_integer():
        return f"{value:.0f}"  # a rank sum
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _counted_at(received_at: str | None, zone: str | None = None) -> str:
    moment = parse_time(received_at)
    return _clock_time(moment, zone) if moment is not None else "-"


@dataclass
class WatchState:
    """What `watch` knows: the latest clock, each board, and the subscriptions of the current
    connection. `apply` takes one message and answers the channels to subscribe to (again)."""

    only: str | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)
    offset_s: float = 0.0
    clock_seen: bool = False
    notice: str | None = None
    subscribed: set[str] = field(default_factory=set)
    seqs: dict[str, int] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)
    timezone: str | None = None  # the event's, from the clock messages

    def connected(self) -> None:
        """A new connection starts with no subscription; boards stay shown until replaced."""
        self.subscribed.clear()
        self.seqs.clear()
        self.fresh.clear()
        self.clock_seen = False

    def shown(self) -> list[dict[str, Any]]:
        return [c for c in self.challenges if self.only is None or c.get("slug") == self.only]

    @property
    def unknown_challenge(self) -> bool:
        return self.clock_seen and self.only is not None and not self.shown()

    def complete(self) -> bool:
        """A snapshot of everything shown has arrived (for --once)."""
        return self.clock_seen and all(
            f"leaderboard:{c['slug']}" not in self.fresh and c["slug"] in self.boards
            for c in self.shown())

    def apply(self, message: dict[str, Any], received_at: float) -> list[str]:
        server_time = parse_time(message.get("server_time"))
        if server_time is not None:
            self.offset_s = server_time - received_at
        kind = message.get("type")
        if kind == "clock":
            self.challenges = list(message.get("challenges") or [])
            self.clock_seen = True
            zone = message.get("timezone")
            if isinstance(zone, str) and known_zone(zone):
                self.timezone = zone
            wanted = [f"leaderboard:{c['slug']}" for c in self.shown()]
            new = [c for c in wanted if c not in self.subscribed]
            self.subscribed.update(new)
            self.fresh.update(new)
            return new
        if kind == "leaderboard":
            return self._leaderboard(message)
        if kind == "resync":
            channels = [c for c in message.get("channels") or sorted(self.subscribed | {"clock"})
                        if isinstance(c, str)]
            self.seqs.clear()
            self.fresh.update(c for c in channels if c.startswith("leaderboard:"))
            return channels
        if kind == "error":
            channel = error_channel(message)
            if channel is not None and channel.startswith("leaderboard:"):
                self.boards[channel.split(":", 1)[1]] = message
                self.fresh.discard(channel)
            else:
                error = message.get("error") or {}
                self.notice = f"{error.get('code')}: {error.get('message')}"
        return []

    def _leaderboard(self, message: dict[str, Any]) -> list[str]:
        slug = str(message.get("challenge"))
        channel = f"leaderboard:{slug}"
        seq = message.get("seq")
        last = self.seqs.get(channel)
        again: list[str] = []
        if channel in self.fresh or last is None or not isinstance(seq, int):
            self.fresh.discard(channel)
        elif seq <= last:
            return []  # older than what is shown
        elif seq > last + 1:
            # A change was missed: the board below is newer, but ask for a fresh snapshot as
            # the contract says, and take whatever seq it carries.
            self.fresh.add(channel)
            again = [channel]
        if isinstance(seq, int):
            self.seqs[channel] = seq
        self.boards[slug] = message
        return again


def error_channel(message: dict[str, Any]) -> str | None:
    """The channel an `error` message is about: its `channel` field; from a server that sends
    none, the channel quoted in the error's text."""
    if "channel" in message:
        channel = message["channel"]
        return channel if isinstance(channel, str) else None
    error = message.get("error") or {}
    found = _CHANNEL_IN_MESSAGE.search(str(error.get("message", "")))
    return found.group(1) if found else None


def render_screen(state: WatchState, server: str, status: str, now: float) -> str:
    zone = state.timezone
    server_clock = _clock_time(now + state.offset_s, zone) if state.clock_seen or \
        state.challenges else "--:--:--"
    if zone:
        server_clock += f" {zone}"
    lines = [f"Podium · {server} · server time {server_clock} · {status}"]
    if state.notice:
        lines.append(f"server says: {state.notice}")
    lines.append("")
    if not state.challenges:
        lines.append("(waiting for the clock…)")
    for challenge in state.shown():
        lines.append(render_board(challenge, state.boards.get(challenge["slug"]),
                                  state.offset_s, now, zone))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def watch_command(args: argparse.Namespace) -> ExitCode:
    remote = Remote.from_arguments(args, "watch")
    server, assumed = remote.address()
    try:
        return asyncio.run(watch(server, remote.token, args.challenge, once=args.once,
                                 out=sys.stdout, err=sys.stderr, scheme_assumed=assumed))
    except KeyboardInterrupt:
        return ExitCode.OK


async def watch(server: str, token: str | None, only: str | None, *, once: bool,
                out: TextIO, err: TextIO, scheme_assumed: bool = False) -> ExitCode:
    """Shows the boards until cancelled (or, with `once`, prints one snapshot); returns the
    exit code: 0, 2 for an unknown challenge, 4 when `once` cannot reach the server."""
    server = await settle_scheme(server, scheme_assumed)
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    state = WatchState(only=only)
    status = "connecting…"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    url = websocket_url(server)
    delays = backoff_delays()

    def draw() -> None:
        if not once:
            out.write(CLEAR + render_screen(state, server, status, time.time()))
            out.flush()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0)
            draw()

    if not once:
        out.write(HIDE_CURSOR)
    refresher = None if once else asyncio.create_task(ticker())
    try:
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if once:
                        await stack.enter_async_context(asyncio.timeout(ONCE_TIMEOUT_S))
                    ws = await stack.enter_async_context(
                        connect(url, additional_headers=headers, proxy=None, open_timeout=10))
                    state.connected()
                    delays = backoff_delays()
                    status = "live"
                    await ws.send(_subscribe(["clock"]))
                    async for raw in ws:
                        try:
                            message = json.loads(raw)
                        except ValueError:
                            continue
                        if not isinstance(message, dict):
                            continue
                        again = state.apply(message, time.time())
                        if state.unknown_challenge:
                            slugs = ", ".join(c.get("slug", "?") for c in state.challenges)
                            print(f"podium: no challenge {only!r}; challenges: {slugs}",
                                  file=err)
                            return ExitCode.USAGE
                        if again:
                            await ws.send(_subscribe(again))
                        if once and state.complete():
                            out.write(render_screen(state, server, "snapshot", time.time()))
                            return ExitCode.OK
                        draw()
                    raise ConnectionError("the server closed the connection")
            except TimeoutError:
                if once and state.clock_seen:
                    out.write(render_screen(state, server, "snapshot (some boards did not "
                                            "answer)", time.time()))
                    return ExitCode.OK
                problem = "timed out"
            except InvalidStatus as exc:
                problem = f"the server refused the websocket: HTTP " \
                          f"{exc.response.status_code}"
            except (OSError, WebSocketException) as exc:
                problem = describe(exc)
            if once:
                print(f"podium: cannot reach the server at {server} ({problem})", file=err)
                return ExitCode.NETWORK
            delay = next(delays)
            status = f"reconnecting… ({problem}; next try in {delay:g} s)"
            draw()
            await asyncio.sleep(delay)
            status = "reconnecting…"
    finally:
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        if not once:
            out.write(SHOW_CURSOR + "\n")
            out.flush()


def _subscribe(channels: list[str]) -> str:
    return json.dumps({"type": "subscribe", "channels": channels})
