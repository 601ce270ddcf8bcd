"""Every event-file key and every command is documented (a setting nobody can find is a
setting nobody uses)."""

from __future__ import annotations

import argparse
import re

from server.cli import _parser
from server.evaluators.result import WARNING_CODES
from server.event import (
    ACCESS_KEYS,
    BATCH_KEYS,
    CENTER_KEYS,
    CHALLENGE_KEYS,
    EVENT_KEYS,
    INCLUSION_KEYS,
    REGISTRATION_KEYS,
    REVIEWER_KEYS,
    SPLIT_KEYS,
    TEAM_KEYS,
)
from tests.helpers import ROOT


def test_every_event_key_is_documented() -> None:
    doc = (ROOT / "docs" / "event-file.md").read_text()
    for key in sorted(EVENT_KEYS | ACCESS_KEYS | CHALLENGE_KEYS | TEAM_KEYS | CENTER_KEYS
                      | REVIEWER_KEYS | INCLUSION_KEYS | REGISTRATION_KEYS | SPLIT_KEYS
                      | BATCH_KEYS):
        assert f"| `{key}` |" in doc, f"{key} is not in docs/event-file.md"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        assert f"podium {name}" in readme, f"podium {name} is not in the README"


def test_the_readme_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [block.split("\n", 1)[1].strip() for block in quick.split("```sh")[1:]]
    commands = [c.split("```", 1)[0].strip() for c in commands]
    assert len(commands) == 2
    assert commands[0].endswith("podium demo")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def _section(doc: str, title: str) -> str:
    return doc.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _codes_in_source(pattern: str) -> set[str]:
    codes: set[str] = set()
    for module in (ROOT / "server").rglob("*.py"):
        codes |= set(re.findall(pattern, module.read_text()))
    return codes


def test_every_error_code_is_documented() -> None:
    doc = (ROOT / "docs" / "formats.md").read_text()
    errors = _section(doc, "Error codes")
    codes = _codes_in_source(r'Problem\(\s*"([a-z_]+)"') | {"more"}
    assert len(codes) > 25
    assert {c for c in codes if f"| `{c}` |" not in errors} == set()
    assert not codes & WARNING_CODES  # a code is an error or a warning, never both


def test_every_warning_code_is_documented() -> None:
    doc = (ROOT / "docs" / "formats.md").read_text()
    warnings = _section(doc, "Warnings")
    used = _codes_in_source(r'notice\(\s*"([a-z_]+)"') | _codes_in_source(
        r'"code": "([a-z_]+)", "message"')
    assert used - {"scoring_failed"} == WARNING_CODES
    assert {c for c in WARNING_CODES if f"| `{c}` |" not in warnings} == set()
    # The picture of the orientation rule is in the docs beside it.
    assert "(orientation.svg)" in doc and (ROOT / "docs" / "orientation.svg").is_file()


def test_every_module_has_its_tests_where_a_reader_looks() -> None:
    table = (ROOT / "docs" / "testing.md").read_text().split("## Where a module's tests are")[1]
    unplaced = []
    for module in sorted((ROOT / "server").rglob("*.py")):
        if module.name in ("__init__.py", "__main__.py") or "_resources" in module.parts:
            continue
        relative = module.relative_to(ROOT / "server")
        folder = ROOT / "tests" / relative.parent
        if list(folder.glob(f"test_{module.stem}.py")) + \
                list(folder.glob(f"test_{module.stem}_*.py")):
            continue
        if f"| `server/{relative}` |" not in table:
            unplaced.append(f"server/{relative}")
    assert not unplaced, f"no tests/…/test_<module>.py and no line in docs/testing.md: {unplaced}"


def test_every_slow_test_says_why_in_the_docs() -> None:
    import re

    doc = (ROOT / "docs" / "testing.md").read_text().split("## Slow tests")[1]
    missing = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        relative = path.relative_to(ROOT).as_posix()
        if re.search(r"^pytestmark = pytest\.mark\.slow", text, re.MULTILINE):
            if f"`{relative}`" not in doc:
                missing.append(relative)
            continue
        for match in re.finditer(r"^@pytest\.mark\.slow.*\n(?:@.*\n)*def (\w+)", text,
                                 re.MULTILINE):
            if f"`{relative}::{match.group(1)}`" not in doc:
                missing.append(f"{relative}::{match.group(1)}")
    assert not missing, f"slow tests without a reason in docs/testing.md: {missing}"
