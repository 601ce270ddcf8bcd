"""`podium check-release`, `podium anonymize` and `podium unseal` (docs/release.md, docs/cli.md).

`add_commands` registers them on the `podium` subparsers; each handler takes the parsed
Namespace and returns the exit code (EXITS in server/command.py), or raises UsageError.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from server import settings
from server.command import ExitCode, UsageError, add_parser
from server.config import Config
from server.dataset.final import resolve
from server.deid.secret import SECRET_FILE, load_keys
from server.errors import ReleaseError
from server.event import parse_event
from server.release.guard import (
    PRIVATE,
    Finding,
    Inspection,
    anonymize,
    record_override,
    scan_release,
    summarize,
)
from server.release.seal import unseal

# Where the server keeps it: the data dir's default (docs/deidentification.md, "The secret").
DEFAULT_SECRET = Path(next(f.default for f in dataclasses.fields(Config)
                          if f.name == "data_dir")) / SECRET_FILE  # type: ignore[arg-type]

_ITEM_INDEX = re.compile(r"\[\d+\]")


def add_commands(subparsers: Any) -> None:
    """Registers the three release commands on `parser.add_subparsers()`'s result."""
    check = add_parser(
        subparsers, "check-release", help="check every release for identifying DICOM attributes",
        description="List the offending files and tags of every release.")
    settings.add_arguments(check, Config, "check-release")
    check.add_argument("--allow", metavar="REASON", default=None,
                       help="print the findings but exit 0; the reason is logged")
    check.set_defaults(handler=check_release_command)

    clean = add_parser(
        subparsers, "anonymize",
        help="write a copy of a DICOM file or folder without identifying data")
    clean.add_argument("in_path", metavar="IN", type=Path, help="a DICOM file or a folder")
    clean.add_argument("out_path", metavar="OUT", type=Path,
                       help="where the cleaned copy goes (outside IN)")
    clean.add_argument("--secret", metavar="FILE", type=Path, default=None,
                       help="the event's de-identification secret, created (mode 0600) if "
                            f"missing (default: {DEFAULT_SECRET})")
    clean.set_defaults(handler=anonymize_command)

    opener = add_parser(subparsers, "unseal", help="open a sealed release archive with its key")
    opener.add_argument("archive", metavar="ARCHIVE", type=Path)
    opener.add_argument("key", metavar="KEY", help="the key revealed at the start")
    opener.add_argument("--out", type=Path, default=None,
                        help="folder to extract into (default: ARCHIVE without .zip)")
    opener.set_defaults(handler=unseal_command)


def check_release_command(args: argparse.Namespace) -> ExitCode:
    reason = args.allow.strip() if args.allow is not None else None
    if reason == "":
        raise UsageError("--allow needs a reason, e.g. --allow \"dates are needed for the task, "
                         "approved by the DPO\"")
    config = Config(**settings.values(args, Config, "check-release"))
    # A release built from a set is checked where it was written (server/dataset/final.py).
    event = resolve(parse_event(config.event_path), config.data_dir)
    counts: dict[str, int] = {}
    failed = False
    for challenge in event.challenges:
        if challenge.release is None:
            print(f"{challenge.slug}: no release in the event file, skipped")
            continue
        try:
            inspection = scan_release(challenge.release)
        except ReleaseError as exc:
            print(f"{challenge.slug}: {challenge.release}: cannot be checked: {exc}")
            failed = True
            continue
        _print_inspection(challenge.slug, challenge.release, inspection)
        if inspection.findings:
            counts[challenge.slug] = len(inspection.findings)
    total = sum(counts.values())
    if failed:
        print("A release could not be checked: fix it, then run check-release again.")
        return ExitCode.REFUSED
    if not total:
        return ExitCode.OK
    if reason is not None:
        log = record_override(config.data_dir.resolve(), event.path, reason, counts)
        print(f"{total} findings allowed: {reason!r} (logged in {log})")
        return ExitCode.OK
    print(f"{total} findings. Clean the release with `podium anonymize IN OUT` and point the "
          "event file at OUT, or accept them with --allow \"reason\".")
    return ExitCode.REFUSED


def anonymize_command(args: argparse.Namespace) -> ExitCode:
    if not args.in_path.exists():
        raise UsageError(f"{args.in_path} not found")
    try:
        secret: Path = args.secret or DEFAULT_SECRET
        report = anonymize(args.in_path, args.out_path, load_keys(secret.parent, secret.name))
    except ReleaseError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    copied = ""
    if report.copied_files == 1:
        copied = "; 1 other file copied as it is"
    elif report.copied_files:
        copied = f"; {report.copied_files} other files copied as they are"
    print(f"cleaned {report.dicom_files} DICOM files into {args.out_path}: "
          f"{report.attributes} identifying attributes replaced or removed (PS3.15 basic "
          f"profile){copied}")
    return ExitCode.OK


def unseal_command(args: argparse.Namespace) -> ExitCode:
    archive: Path = args.archive
    if not archive.is_file():
        raise UsageError(f"archive {archive} not found")
    out: Path = args.out or (archive.with_suffix("") if archive.suffix.lower() == ".zip"
                             else archive.with_name(archive.name + ".unsealed"))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not an empty folder; choose another "
                         "with --out")
    try:
        result = unseal(archive, args.key, out)
    except ReleaseError as exc:  # WrongKeyError included: both leave nothing half-written
        print(f"podium: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    checked = "all checked against MANIFEST.csv" if result.verified else \
        "no MANIFEST.csv to check them against"
    print(f"unsealed {len(result.files)} files ({result.total_bytes} bytes) into {result.out_dir}; "
          f"{checked}")
    return ExitCode.OK


def _print_inspection(slug: str, release: Path, inspection: Inspection) -> None:
    where = f"{slug}: {release}"
    if not inspection.findings:
        print(f"{where}: clean ({_count(inspection.dicom_files, 'DICOM file')} among "
              f"{_count(inspection.files, 'file')})")
        return
    grouped = summarize(inspection.findings)
    print(f"{where}: {_count(len(inspection.findings), 'finding')} in {len(grouped)} of "
          f"{_count(inspection.dicom_files, 'DICOM file')}")
    for file, findings in grouped.items():
        print(f"  {file}: {_describe(findings)}")


def _describe(findings: list[Finding]) -> str:
    # Enhanced multi-frame files repeat an attribute per frame: one entry with a count each.
    repeats: dict[str, list[str]] = {}
    for f in findings:
        if not f.reason.startswith(PRIVATE):
            exact = f"{f.keyword} {f.tag}" if f.tag else f.reason
            repeats.setdefault(_ITEM_INDEX.sub("[*]", exact), []).append(exact)
    named = [exacts[0] if len(exacts) == 1 else f"{pattern} ×{len(exacts)}"
             for pattern, exacts in repeats.items()]
    private = [f.tag for f in findings if f.reason.startswith(PRIVATE)]
    if private:
        groups = sorted({tag[1:5] for tag in private})
        shown = ", ".join(private[:4]) + (", …" if len(private) > 4 else "")
        named.append(f"{len(private)} private tags in groups {', '.join(groups)} ({shown})")
    return "; ".join(named)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
