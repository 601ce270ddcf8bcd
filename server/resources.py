"""Where migrations, templates and static files live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    # A wheel carries them under server/_resources (pyproject force-include); an editable
    # install or a checkout reads them from the repository root.
    packaged = _PACKAGE / "_resources" / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name
