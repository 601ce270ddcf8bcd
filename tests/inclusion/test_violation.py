"""Every code a check can report is declared, documented in docs/inclusion.md, and used."""

from __future__ import annotations

import re

import pytest

from server.inclusion.violation import CODES, Severity, Violation
from tests.helpers import ROOT


def _used() -> set[str]:
    used: set[str] = set()
    for module in (ROOT / "server" / "inclusion").glob("*.py"):
        used |= set(re.findall(r'Violation\(\s*"([a-z_]+)"', module.read_text()))
    return used


def test_every_code_is_declared_documented_and_used() -> None:
    doc = (ROOT / "docs" / "inclusion.md").read_text()
    table = doc.split("## What a center sees", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(CODES)
    assert _used() == set(CODES)


def test_an_undeclared_code_cannot_be_reported() -> None:
    with pytest.raises(ValueError, match="undocumented inclusion code 'slice_thick'"):
        Violation("slice_thick", "slice_thickness_mm", "…", Severity.VIOLATION)


def test_as_json() -> None:
    v = Violation("kernel", "kernel", "kernel B30f is soft", Severity.WARNING, "B30f (soft)",
                  "a hard kernel")
    assert v.to_json() == {"code": "kernel", "rule": "kernel", "message": "kernel B30f is soft",
                           "severity": "warning", "found": "B30f (soft)",
                           "expected": "a hard kernel"}
    assert not v.excludes
