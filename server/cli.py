"""The `podium` command line (README.md, docs/settings.md): each command's settings come from
`Config` (server/settings.py), its handler returns an `ExitCode`, and a `UsageError` raised
anywhere below a handler is printed here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from server import __version__, settings
from server.access import Credential, ensure_tokens
from server.command import ExitCode, UsageError, add_parser
from server.config import Config
from server.errors import EventFileError
from server.event import EventSpec, check_truth, parse_event

log = logging.getLogger("podium")

Handler = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium", description="Live evaluation server for a data-challenge final day.",
        epilog="Settings, and every command's exit codes: docs/settings.md.")
    parser.add_argument("--version", action="version", version=f"podium {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        found = add_parser(sub, name, help=help)
        settings.add_arguments(found, Config, name)
        found.set_defaults(handler=handler)
        return found

    command("serve", serve, "load the event file and serve it")
    command("tokens", tokens, "print every role's token and login link").add_argument(
        "--format", choices=("table", "csv", "json"), default="table")
    scoring = command("score", score, "score one submission file offline")
    scoring.add_argument("--challenge", required=True, metavar="SLUG")
    scoring.add_argument("submission", type=Path)
    command("demo", demo, "write a synthetic event into the data dir and serve it")
    exporting = command("export", export, "write the results workbook (.xlsx) and/or "
                                          "challengeR's long table (.csv)")
    exporting.add_argument("out", type=Path, nargs="?", default=None,
                           help="the .xlsx file to write")
    exporting.add_argument("--challenger", type=Path, default=None, metavar="FILE.csv",
                           help="also (or only) write the per-exam values as challengeR's "
                                "long table: task, case, algorithm, value")
    command("rescore", rescore, "score every counted submission again and list any "
                                "difference with the stored metrics").add_argument(
        "--challenge", default=None, metavar="SLUG")

    splitting = command("split", split, "split a question's kept exams into its sets (once), "
                                        "write their manifests and print the report")
    splitting.add_argument("--challenge", required=True, metavar="SLUG")
    splitting.add_argument("--redo", action="store_true",
                           help="split again, replacing the split in force (refused once a "
                                "set is released)")

    from server import submit, watch
    from server.release.commands import add_commands as add_release_commands

    submit.add_command(sub)
    watch.add_command(sub)
    add_release_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.handler(args))
    except EventFileError as exc:
        print(f"podium: event file refused: {exc}", file=sys.stderr)
    except UsageError as exc:
        print(f"podium: {exc}", file=sys.stderr)
    except BrokenPipeError:  # the reader stopped reading (`podium score ... | head`): no trace
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe at exit
        return 1
    return ExitCode.USAGE


def config_from(args: argparse.Namespace, **given: Any) -> Config:
    """The Config of the command `args` were parsed for: its settings, then `given`."""
    config = Config(**{**settings.values(args, Config, args.command), **given})
    return replace(config, data_dir=config.data_dir.resolve())


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

    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from server.database import embedded_postgres

    log.info("starting the embedded PostgreSQL in %s", config.data_dir / "postgres")
    with embedded_postgres(config.data_dir) as url:
        yield replace(config, database_url=url)
    log.info("embedded PostgreSQL stopped")


def serve(args: argparse.Namespace) -> ExitCode:
    config = config_from(args)
    event = check_truth(_resolved(parse_event(config.event_path), config))
    config = replace(config, event_path=event.path)
    _setup_logging()
    with _database(config) as config:
        asyncio.run(_serve(config, event))
    return ExitCode.OK


def demo(args: argparse.Namespace) -> ExitCode:
    from server.demo import write_demo_event
    from server.demo_inclusion import prepare as prepare_demo

    # The demo's event file is written into the data dir: known once the settings are read.
    config = config_from(args, event_path=Path())
    event_file = config.data_dir / "demo" / "event.toml"
    if not event_file.exists():
        print(f"Writing the demo event into {event_file.parent} …", flush=True)
        write_demo_event(event_file.parent)
    event = parse_event(event_file)
    config = replace(config, event_path=event.path)
    _setup_logging()
    with _database(config) as config:
        assert config.database_url
        # The months before the final day, through the server's own functions: the centers'
        # exams, their grades, the splits, the registered teams (server/demo_inclusion.py).
        registered = asyncio.run(prepare_demo(config.database_url, event, config.data_dir))
        event = check_truth(_resolved(event, config))
        asyncio.run(_serve(config, event, all_links=True, registered=registered))
    return ExitCode.OK


def _resolved(event: EventSpec, config: Config) -> EventSpec:
    """A final day built from a set reads its truth and release in the data dir."""
    from server.dataset.final import resolve

    return resolve(event, config.data_dir)


def export(args: argparse.Namespace) -> ExitCode:
    if args.out is None and args.challenger is None:
        raise UsageError("export needs OUT.xlsx, --challenger FILE.csv, or both")
    return _offline(args, lambda url: _export(url, args.out, args.challenger))


def rescore(args: argparse.Namespace) -> ExitCode:
    return _offline(args, lambda url: _rescore(url, args.challenge))


def _offline(args: argparse.Namespace,
             work: Callable[[str], Coroutine[Any, Any, ExitCode]]) -> ExitCode:
    """`podium export` and `podium rescore`: the event's database without serving it."""
    config = config_from(args)
    event = parse_event(config.event_path)
    config = replace(config, event_path=event.path)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with _database(config) as config:
        assert config.database_url
        return asyncio.run(work(config.database_url))


async def _export(url: str, out: Path | None, challenger: Path | None) -> ExitCode:
    import asyncpg

    from server.deliberation.challenger import challenger_csv
    from server.deliberation.workbook import results_workbook
    from server.results import load_results

    conn = await asyncpg.connect(url)
    try:
        results = await load_results(conn)
    finally:
        await conn.close()
    if out is not None:
        data = await asyncio.to_thread(results_workbook, results)
        await asyncio.to_thread(out.write_bytes, data)
        print(f"wrote {out}")
    if challenger is not None:
        text = await asyncio.to_thread(challenger_csv, results)
        await asyncio.to_thread(challenger.write_text, text, encoding="utf-8")
        print(f"wrote {challenger}")
    return ExitCode.OK


async def _rescore(url: str, only: str | None) -> ExitCode:
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
    return ExitCode.REFUSED if differences else ExitCode.OK


def split(args: argparse.Namespace) -> ExitCode:
    config = config_from(args)
    event = parse_event(config.event_path)
    try:
        challenge = event.challenge(args.challenge)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    return _offline(args, lambda url: _split(url, challenge, config.data_dir, args.redo))


async def _split(url: str, challenge: Any, data_dir: Path, redo: bool) -> ExitCode:
    import asyncpg

    from server.dataset.cohort import make_split, split_json
    from server.dataset.split import report_text
    from server.errors import NoSplit, PodiumError

    conn = await asyncpg.connect(url)
    try:
        try:
            if redo:
                shown = await make_split(conn, challenge, data_dir, by="podium split",
                                         redo=True)
            else:
                try:
                    shown = await split_json(conn, challenge, data_dir)
                except NoSplit:
                    shown = await make_split(conn, challenge, data_dir, by="podium split")
        except PodiumError as exc:
            print(f"podium: {challenge.slug}: {exc.message} ({exc.code})", file=sys.stderr)
            return ExitCode.REFUSED
    finally:
        await conn.close()
    print(f"{challenge.slug}: split {shown['split']} (seed {shown['seed']}), made by "
          f"{shown['made_by']} at {shown['made_at']}")
    print(report_text(shown["sets"]))
    for row in shown["sets"]:
        if row["manifest"]:
            print(f"manifest of {row['set']}: {row['manifest']}")
    return ExitCode.OK


async def _serve(config: Config, event: EventSpec, *, all_links: bool = False,
                 registered: dict[str, str] | None = None) -> None:
    from server.app import create_app, start_serving
    from server.connection import raise_descriptor_limit
    from server.keys import CONNECTIONS, DICOM_NODE

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
        node = app.get(DICOM_NODE)
        dicom = f"{node.ae_title} at {config.host}:{node.port}" if node else None
        _print_banner(shown, event, credentials, all_links=all_links, dicom=dicom,
                      registered=registered or {})
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def _print_banner(config: Config, event: EventSpec, credentials: list[Credential], *,
                  all_links: bool = False, dicom: str | None = None,
                  registered: dict[str, str] | None = None) -> None:
    url = config.public_url
    lines = [f"Podium is serving {event.name!r} at {url}/"]
    if dicom:
        lines.append(f"  DICOM node {dicom} (each center calls it with its ae_title)")
    shown = credentials if all_links else credentials[:2]
    width = max(len(c.label) for c in shown)
    for credential in shown:
        lines.append(f"  {credential.label:<{width}}  {url}/login?token={credential.token}")
    for team, token in (registered or {}).items():
        lines.append(f"  {team} (registered)  {url}/login?token={token}")
    if all_links:
        lines.append(f"  example submissions: {event.path.parent / 'submissions'}")
    else:
        lines.append(f"  team links: podium tokens --event {event.path} "
                     f"--data-dir {config.data_dir}")
    print("\n".join(lines), flush=True)


def tokens(args: argparse.Namespace) -> ExitCode:
    config = config_from(args)
    event = parse_event(config.event_path)
    credentials = ensure_tokens(event, config.data_dir)
    base = config.public_url
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
    return ExitCode.OK


def score(args: argparse.Namespace) -> ExitCode:
    from server.evaluators import evaluate

    config = config_from(args)
    event = check_truth(_resolved(parse_event(config.event_path), config))
    try:
        challenge = event.challenge(args.challenge)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if not args.submission.is_file():
        raise UsageError(f"submission file {args.submission} not found")
    result = evaluate(challenge.kind, challenge.truth, args.submission,
                      challenge.scoring_options())
    print(json.dumps(result.to_json(), indent=2))
    return ExitCode.OK if result.status == "scored" else ExitCode.REFUSED


if __name__ == "__main__":
    raise SystemExit(main())
