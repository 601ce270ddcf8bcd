"""What every `podium` command shares with the shell that runs it: one usage error and one
table of exit codes (docs/settings.md, "Exit codes").

A command's handler takes the parsed arguments and returns an `ExitCode`; a mistake in how it
was called is a `UsageError`, raised wherever it is found and printed by `server.cli.main`
(`podium: MESSAGE` on stderr, exit 2, as argparse's own errors).
"""

from __future__ import annotations

import argparse
import enum
from typing import Any


class UsageError(Exception):
    """A mistake in how podium was called: the message goes to stderr, the exit code is 2."""


class ExitCode(enum.IntEnum):
    OK = 0
    REFUSED = 1  # the command did its work and the answer is no (invalid, refused, findings)
    USAGE = 2
    MISMATCH = 3  # the server stored other bytes than the ones sent
    NETWORK = 4  # the server could not be reached, or failed before acknowledging
    NO_RESULT = 5  # acknowledged, but no result within --wait


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.REFUSED: "done, and the answer is no: a submission invalid or refused, findings "
                      "in a release, a rescore that differs",
    ExitCode.USAGE: "a usage error: a bad flag or value, a missing file, an event file refused",
    ExitCode.MISMATCH: "the server's SHA-256 of an upload differs from the bytes sent",
    ExitCode.NETWORK: "the server could not be reached, or failed before acknowledging",
    ExitCode.NO_RESULT: "acknowledged, but no result within --wait",
}

_USAGE = "usage error"

# Per command, the codes it may return and what each means for it.
EXITS: dict[str, dict[ExitCode, str]] = {
    "serve": {ExitCode.OK: "stopped on SIGINT or SIGTERM", ExitCode.USAGE: _USAGE},
    "demo": {ExitCode.OK: "stopped on SIGINT or SIGTERM", ExitCode.USAGE: _USAGE},
    "tokens": {ExitCode.OK: "listed", ExitCode.USAGE: _USAGE},
    "score": {ExitCode.OK: "scored", ExitCode.REFUSED: "invalid", ExitCode.USAGE: _USAGE},
    "check-release": {ExitCode.OK: "clean, or findings allowed with --allow",
                      ExitCode.REFUSED: "findings, or a release that cannot be checked",
                      ExitCode.USAGE: _USAGE},
    "anonymize": {ExitCode.OK: "cleaned", ExitCode.REFUSED: "a file that cannot be cleaned",
                  ExitCode.USAGE: _USAGE},
    "unseal": {ExitCode.OK: "unsealed and checked",
               ExitCode.REFUSED: "a wrong key or a damaged archive", ExitCode.USAGE: _USAGE},
    "submit": {ExitCode.OK: "accepted (and scored, with --wait)",
               ExitCode.REFUSED: "refused by the server, or scored invalid",
               ExitCode.USAGE: _USAGE,
               ExitCode.MISMATCH: "SHA-256 mismatch: send again, tell the organizers",
               ExitCode.NETWORK: "not acknowledged (network or server failure): send again",
               ExitCode.NO_RESULT: "accepted, no result within --wait"},
    "watch": {ExitCode.OK: "Ctrl-C, or --once printed",
              ExitCode.USAGE: f"{_USAGE}, or --challenge naming no challenge",
              ExitCode.NETWORK: "--once only: the server cannot be reached"},
    "export": {ExitCode.OK: "written", ExitCode.USAGE: _USAGE},
    "rescore": {ExitCode.OK: "no difference", ExitCode.REFUSED: "differences listed",
                ExitCode.USAGE: _USAGE},
    "split": {ExitCode.OK: "split made or shown",
              ExitCode.REFUSED: "refused (no split declared, too few exams, released already)",
              ExitCode.USAGE: _USAGE},
}


def exit_summary(command: str) -> str:
    """One line: `0 scored · 1 invalid · 2 usage error`."""
    return " · ".join(f"{int(code)} {meaning}" for code, meaning in EXITS[command].items())


def exit_help(command: str) -> str:
    """The epilog of a command's --help: its exit codes, one a line."""
    return "exit codes:\n" + "\n".join(f"  {int(code)}  {meaning}"
                                        for code, meaning in EXITS[command].items())


def add_parser(subparsers: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    """`subparsers.add_parser(name, ...)` with the command's exit codes below its --help."""
    return subparsers.add_parser(name, epilog=exit_help(name),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 **options)
