"""Settings declared once: a field of a frozen dataclass (`Config` for the server, `Remote` for
the commands that talk to one) made with `setting(...)` carries its default, help, commands,
environment variable and bounds; its name and type are the field's. From them come the
command-line options (`add_arguments`), the values read back (`values`) and the table in
docs/settings.md, which tests/test_settings.py compares with the declarations both ways.

A flag is the field's name with dashes, less a unit suffix `_s` (`scoring_timeout_s` is
`--scoring-timeout SECONDS`); a value is the flag's, else the environment variable's, else the
default.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from server.command import UsageError

_SETTING = "podium.setting"
REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # int, float, str or Path; the field may also be None
    default: Any
    help: str
    commands: tuple[str, ...]
    flag: str
    env: str | None = None
    metavar: str | None = None
    default_text: str | None = None  # how a default of None reads ("an embedded PostgreSQL")
    minimum: float | None = None
    above: bool = False  # minimum excluded

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def shown_default(self) -> str:
        """The default as --help and docs/settings.md give it."""
        if self.required:
            return "required"
        if self.default is None:
            return self.default_text or "none"
        if isinstance(self.default, float) and self.default.is_integer():
            return f"{self.default:.0f}"
        return str(self.default)

    def check(self, value: Any, source: str) -> Any:
        """`value` (from `source`: the flag or the variable) if within bounds."""
        if value is None or self.kind not in (int, float):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{source} must be a finite number, got {value:g}")
        if self.minimum is not None and (value <= self.minimum if self.above
                                         else value < self.minimum):
            bound = f"> {self.minimum:g}" if self.above else f">= {self.minimum:g}"
            unit = " of seconds" if self.metavar == "SECONDS" else \
                " of MiB" if self.metavar == "MIB" else ""
            raise UsageError(f"{source} must be a number{unit} {bound}, got {value:g}")
        return value


def setting(default: Any = REQUIRED, help: str = "", *,
            commands: Collection[str], env: str | None = None, metavar: str | None = None,
            default_text: str | None = None, minimum: float | None = None,
            above: bool = False, flag: str | None = None, secret: bool = False) -> Any:
    """A dataclass field declaring a setting (see the module's docstring); a `secret` one is
    left out of the dataclass's repr."""
    declared = {"help": help, "commands": tuple(commands), "env": env, "metavar": metavar,
                "default_text": default_text, "minimum": minimum, "above": above,
                "flag": flag}
    if default is REQUIRED:
        return dataclasses.field(repr=not secret, metadata={_SETTING: declared})
    return dataclasses.field(default=default, repr=not secret, metadata={_SETTING: declared})


def flag_for(name: str) -> str:
    return "--" + name.removesuffix("_s").replace("_", "-")


def declared(cls: type) -> list[Setting]:
    """The settings of a dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_SETTING)
        if spec is None:
            continue
        found.append(Setting(name=f.name, kind=_base_type(hints[f.name]), default=f.default,
                             **{**spec, "flag": spec["flag"] or flag_for(f.name)}))
    return found


def _base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (kind,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return typing.cast(type, kind)
    return typing.cast(type, hint)


def for_command(settings: Iterable[Setting], command: str) -> list[Setting]:
    return [s for s in settings if command in s.commands]


def add_arguments(parser: argparse.ArgumentParser, cls: type, command: str) -> None:
    """The options of `command` for the settings of `cls`. Their argparse default is None, so
    a value not given is told apart from one given as the default (the variable comes between)."""
    for s in for_command(declared(cls), command):
        text = s.help
        if s.env:
            text += f" (or {s.env})"
        if not s.required:
            text += f"; default: {s.shown_default()}" if text else s.shown_default()
        parser.add_argument(s.flag, dest=s.name, type=s.kind, default=None,
                            required=s.required, metavar=s.metavar,
                            help=text.replace("%", "%%"))


def values(args: argparse.Namespace, cls: type, command: str,
           environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of `cls` that `command` takes, read from its arguments and the environment
    and checked: keyword arguments for `cls`. Raises UsageError."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for s in for_command(declared(cls), command):
        value, source = getattr(args, s.name, None), s.flag
        if value is None and s.env and environ.get(s.env):
            value, source = _parse(s, environ[s.env]), s.env
        if value is None:
            if s.required:  # argparse has refused it already; kept for direct callers
                raise UsageError(f"{s.flag} is required")
            continue
        found[s.name] = s.check(value, source)
    return found


def _parse(s: Setting, raw: str) -> Any:
    try:
        return s.kind(raw)
    except ValueError:
        raise UsageError(f"{s.env}={raw!r}: expected {s.kind.__name__}") from None
