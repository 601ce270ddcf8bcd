"""Challenge kinds: one module per kind in this package, each defining `KIND`, a
`server.kinds.base.Kind`. Adding a kind is adding a module here (and its tests); every other
part of Podium asks `get(name)`, or `of(challenge)` for a challenge's kind with the ranking its
event file declares (what boards, results, rescoring and the analysis rank by). Modules named
in the environment variable PODIUM_KINDS (comma-separated, importable) add kinds from outside
the package. See docs/kinds.md.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from server.kinds.base import WARNINGS_TEXT, Kind, Metric, table_format

EXTRA_ENV = "PODIUM_KINDS"
_HELPERS = {"base", "combined", "from_set"}  # building blocks, not kinds

__all__ = ["EXTRA_ENV", "WARNINGS_TEXT", "Kind", "Metric", "UnknownKind",
           "all_kinds", "discover", "get", "names", "of", "table_format"]


class UnknownKind(ValueError):
    """A kind name no module defines."""


_registry: dict[str, Kind] = {}


def discover() -> dict[str, Kind]:
    """Imports every kind module (this package's, then PODIUM_KINDS') and returns the kinds
    by name; called once, and again by whoever changes PODIUM_KINDS."""
    modules = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
               if m.name not in _HELPERS]
    modules += [n.strip() for n in os.environ.get(EXTRA_ENV, "").split(",") if n.strip()]
    found: dict[str, Kind] = {}
    for module_name in modules:
        kind = getattr(importlib.import_module(module_name), "KIND", None)
        if not isinstance(kind, Kind):
            raise TypeError(f"{module_name} defines no KIND (a server.kinds.Kind)")
        if kind.name in found:
            raise ValueError(f"{module_name}: kind {kind.name!r} is defined twice")
        found[kind.name] = kind
    _registry.clear()
    _registry.update(found)
    _declared.cache_clear()
    return dict(found)


def all_kinds() -> dict[str, Kind]:
    if not _registry:
        discover()
    return dict(_registry)


def names() -> tuple[str, ...]:
    return tuple(all_kinds())


def get(name: str) -> Kind:
    kinds = all_kinds()
    if name not in kinds:
        raise UnknownKind(f"unknown challenge kind {name!r}; expected one of "
                          f"{', '.join(kinds)}")
    return kinds[name]


class OfChallenge(Protocol):
    """A challenge as any part of Podium holds it (event spec, stored row, results)."""

    @property
    def kind(self) -> str: ...
    @property
    def ranking(self) -> Mapping[str, Any] | None: ...


def of(challenge: OfChallenge) -> Kind:
    """The kind of `challenge`, ranking as the challenge declares (`ranking = {...}` in the
    event file, stored with it); without a declaration, the kind's own rule."""
    if not challenge.ranking:
        return get(challenge.kind)
    return _declared(challenge.kind, json.dumps(challenge.ranking, sort_keys=True))


@lru_cache(maxsize=256)
def _declared(name: str, declaration: str) -> Kind:
    kind = get(name)
    return kind.with_ranking(kind.ranking_from(json.loads(declaration)))
