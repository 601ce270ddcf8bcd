"""Challenge kinds: one module per kind in this package, each defining `KIND`, a
`server.kinds.base.Kind`. Adding a kind is adding a module here (and its tests); every other
part of Podium asks `get(name)`. Modules named in the environment variable PODIUM_KINDS
(comma-separated, importable) add kinds from outside the package. See docs/kinds.md.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from server.kinds.base import WARNINGS_TEXT, Kind, Metric, table_format

EXTRA_ENV = "PODIUM_KINDS"
_HELPERS = {"base", "combined"}  # building blocks, not kinds

__all__ = ["EXTRA_ENV", "WARNINGS_TEXT", "Kind", "Metric", "UnknownKind",
           "all_kinds", "discover", "get", "names", "table_format"]


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
