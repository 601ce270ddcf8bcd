"""The `podium` command line (SPEC §1)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from server import __version__
from server.access import Credential, ensure_tokens
from server.config import DEFAULT_DATA_DIR, Config, database_url_from_env
from server.errors import EventFileError
from server.event import EventSpec, check_truth, parse_event

log = logging.getLogger("podium")

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how podium was called: message on stderr, exit 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium", description="Live evaluation server for a data-challenge final day.")
    parser.add_argument("--version", action="version", version=f"podium {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="load the event file and serve it")
    serve.add_argument("--event", required=True, type=Path, help="the event file (TOML)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    serve.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    serve.add_argument("--database-url", default=None,
                       help="PostgreSQL URL (or PODIUM_DATABASE_URL); default: embedded")
    serve.add_argument("--base-url", default=None,
                       help="public address used in printed links (default http://HOST:PORT)")
    serve.add_argument("--scoring-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="a submission still being scored after this long is marked invalid")
    serve.add_argument("--scoring-memory-mb", type=int, default=4096, metavar="MIB",
                       help="address-space limit of each scoring process; a file that needs "
                            "more is marked invalid (too_large); 0: no limit")
    serve.add_argument("--storage-quota-mb", type=float, default=None, metavar="MIB",
                       help="what one team may store per challenge, for challenges without "
                            "storage_quota_mb (default: four maximum-size uploads)")
    serve.add_argument("--storage-reserve-mb", type=float, default=None, metavar="MIB",
                       help="free space on the data dir that uploads never use (default: "
                            "2 GiB or 5%% of the disk, whichever is smaller)")
    serve.add_argument("--allow-release", metavar="REASON", default=None,
                       help="serve releases even with identifying DICOM attributes (logged)")
    serve.add_argument("--scoring-workers", type=int, default=2, metavar="N",
                       help="scoring processes run by this server (0: leave scoring to other "
                            "server processes sharing the database)")
    _connection_arguments(serve)

    tokens = sub.add_parser("tokens", help="print every role's token and login link")
    tokens.add_argument("--event", required=True, type=Path)
    tokens.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    tokens.add_argument("--format", choices=("table", "csv", "json"), default="table")
    tokens.add_argument("--base-url", default="http://127.0.0.1:8080",
                        help="the server's public address, for the links")

    score = sub.add_parser("score", help="score one submission file offline")
    score.add_argument("--event", required=True, type=Path)
    score.add_argument("--challenge", required=True)
    score.add_argument("submission", type=Path)

    demo = sub.add_parser("demo", help="write a synthetic event into the data dir and serve it")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    demo.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    demo.add_argument("--database-url", default=None)
    _connection_arguments(demo)

    export = sub.add_parser("export", help="write the results workbook (.xlsx)")
    export.add_argument("--event", required=True, type=Path)
    export.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    export.add_argument("--database-url", default=None)
    export.add_argument("out", type=Path, help="the .xlsx file to write")

    rescore = sub.add_parser("rescore", help="score every counted submission again and list "
                                             "any difference with the stored metrics")
    rescore.add_argument("--event", required=True, type=Path)
    rescore.add_argument("--challenge", default=None)
    rescore.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    rescore.add_argument("--database-url", default=None)

    from server.client import add_commands as add_client_commands
    from server.release.commands import add_commands as add_release_commands

    add_client_commands(sub)
    add_release_commands(sub)
    return parser


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-connections", type=int, default=None, metavar="N",
                        help="open connections at most (default: from the open-file limit, "
                             "at most 4096)")
    parser.add_argument("--max-connections-per-client", type=int, default=256, metavar="N",
                        help="open connections from one address at most (0: no limit; use 0 "
                             "behind a proxy)")
    parser.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="a request's headers must arrive within this time")
    parser.add_argument("--keepalive-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="an idle keep-alive connection is closed after this time")


def _connection_settings(args: argparse.Namespace) -> dict[str, Any]:
    for flag in ("max_connections", "max_connections_per_client"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be 0 or more")
    for flag in ("header_timeout", "keepalive_timeout"):
        if not getattr(args, flag) > 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive number of seconds")
    return {"max_connections": args.max_connections or None,
            "max_connections_per_client": args.max_connections_per_client,
            "header_timeout_s": args.header_timeout,
            "keepalive_timeout_s": args.keepalive_timeout}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "tokens":
            return tokens(args)
        if args.command == "score":
            return score(args)
        if args.command == "demo":
            return demo(args)
        if args.command in ("export", "rescore"):
            return offline(args)
        if hasattr(args, "handler"):
            return int(args.handler(args))
    except EventFileError as exc:
        print(f"podium: event file refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _setup_logging() -> None:
    from server.logs import RepeatFilter

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    repeats = RepeatFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeats)
    # Access lines are JSON objects, one per line, so they can be piped to any log tool.
    access = logging.getLogger("podium.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@contextlib.contextmanager
def _database(config: Config) -> Iterator[Config]:
    if config.database_url:
        yield config
        return
    import warnings
    from dataclasses import replace

    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from server.database import embedded_postgres

    log.info("starting the embedded PostgreSQL in %s", config.data_dir / "postgres")
    with embedded_postgres(config.data_dir) as url:
        yield replace(config, database_url=url)
    log.info("embedded PostgreSQL stopped")


def serve(args: argparse.Namespace) -> int:
    event = check_truth(parse_event(args.event))
    config = Config(event_path=event.path, host=args.host, port=args.port,
                    data_dir=args.data_dir.resolve(),
                    database_url=database_url_from_env(args.database_url),
                    base_url=args.base_url, scoring_slots=max(0, args.scoring_workers),
                    scoring_timeout_s=args.scoring_timeout,
                    scoring_memory_mb=max(0, args.scoring_memory_mb),
                    storage_quota_mb=_positive(args.storage_quota_mb, "--storage-quota-mb"),
                    storage_reserve_mb=_positive(args.storage_reserve_mb,
                                                 "--storage-reserve-mb", zero=True),
                    allow_release=args.allow_release, **_connection_settings(args))
    _setup_logging()
    with _database(config) as config:
        asyncio.run(_serve(config, event))
    return EXIT_OK


def _positive(value: float | None, flag: str, *, zero: bool = False) -> float | None:
    if value is None:
        return None
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise UsageError(f"{flag} must be a number of MiB {'>= 0' if zero else '> 0'}, "
                         f"got {value:g}")
    return value


def demo(args: argparse.Namespace) -> int:
    from server.demo import write_demo_event

    data_dir = args.data_dir.resolve()
    event_file = data_dir / "demo" / "event.toml"
    if not event_file.exists():
        print(f"Writing the demo event into {event_file.parent} …", flush=True)
        write_demo_event(event_file.parent)
    event = check_truth(parse_event(event_file))
    config = Config(event_path=event.path, host=args.host, port=args.port, data_dir=data_dir,
                    database_url=database_url_from_env(args.database_url),
                    **_connection_settings(args))
    _setup_logging()
    with _database(config) as config:
        asyncio.run(_serve(config, event, all_links=True))
    return EXIT_OK


def offline(args: argparse.Namespace) -> int:
    """`podium export` and `podium rescore`: the event's database without serving it."""
    event = parse_event(args.event)
    config = Config(event_path=event.path, data_dir=args.data_dir.resolve(),
                    database_url=database_url_from_env(args.database_url))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with _database(config) as config:
        assert config.database_url
        if args.command == "export":
            return asyncio.run(_export(config.database_url, args.out))
        return asyncio.run(_rescore(config.database_url, args.challenge))


async def _export(url: str, out: Path) -> int:
    import asyncpg

    from server.deliberation.workbook import results_workbook
    from server.results import load_results

    conn = await asyncpg.connect(url)
    try:
        results = await load_results(conn)
    finally:
        await conn.close()
    data = await asyncio.to_thread(results_workbook, results)
    await asyncio.to_thread(out.write_bytes, data)
    print(f"wrote {out}")
    return EXIT_OK


async def _rescore(url: str, only: str | None) -> int:
    import asyncpg

    from server.rescore import rescore

    conn = await asyncpg.connect(url)
    try:
        differences, checked = await rescore(conn, only)
    finally:
        await conn.close()
    for line in differences:
        print(line)
    print(f"{checked} counted submission(s) rescored, {len(differences)} difference(s)")
    return EXIT_INVALID if differences else EXIT_OK


async def _serve(config: Config, event: EventSpec, *, all_links: bool = False) -> None:
    from dataclasses import replace

    from server.app import create_app, start_serving
    from server.connection import raise_descriptor_limit
    from server.keys import CONNECTIONS

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    descriptors = raise_descriptor_limit()
    app = create_app(config, event)
    limits = app[CONNECTIONS].limits
    log.info("open-file limit %d: at most %d connections, %s per client", descriptors,
             limits.max_connections, limits.per_client or "any number")
    runner = await start_serving(app)
    try:
        port = runner.addresses[0][1] if config.port == 0 else config.port
        shown = replace(config, port=port)
        credentials = ensure_tokens(event, config.data_dir)
        _print_banner(shown, event, credentials, all_links=all_links)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def _print_banner(config: Config, event: EventSpec, credentials: list[Credential], *,
                  all_links: bool = False) -> None:
    url = config.public_url
    lines = [f"Podium is serving {event.name!r} at {url}/"]
    shown = credentials if all_links else credentials[:2]
    width = max(len(c.label) for c in shown)
    for credential in shown:
        lines.append(f"  {credential.label:<{width}}  {url}/login?token={credential.token}")
    if all_links:
        lines.append(f"  example submissions: {event.path.parent / 'submissions'}")
    else:
        lines.append(f"  team links: podium tokens --event {event.path} "
                     f"--data-dir {config.data_dir}")
    print("\n".join(lines), flush=True)


def tokens(args: argparse.Namespace) -> int:
    event = parse_event(args.event)
    credentials = ensure_tokens(event, args.data_dir.resolve())
    base = args.base_url.rstrip("/")
    rows = [{"role": str(c.role), "name": c.label, "token": c.token,
             "link": f"{base}/login?token={c.token}"} for c in credentials]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["role", "name", "token", "link"])
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['role']:<10} {r['name']:<{width}}  {r['link']}")
    return EXIT_OK


def score(args: argparse.Namespace) -> int:
    from server.evaluators import ScoringOptions, evaluate

    event = check_truth(parse_event(args.event))
    try:
        challenge = event.challenge(args.challenge)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if not args.submission.is_file():
        raise UsageError(f"submission file {args.submission} not found")
    result = evaluate(challenge.kind, challenge.truth, args.submission,
                      ScoringOptions(hu_window=challenge.hu_window))
    print(json.dumps(result.to_json(), indent=2))
    return EXIT_OK if result.status == "scored" else EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
