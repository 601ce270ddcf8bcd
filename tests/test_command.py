"""One usage error and one table of exit codes for every command (server/command.py), shown in
each command's --help and in docs/settings.md."""

from __future__ import annotations

import argparse
import re

import pytest

from server.cli import _parser
from server.command import EXITS, MEANING, ExitCode, exit_help, exit_summary
from tests.command_line import NODULES_CSV, closed_port_url, podium
from tests.helpers import EXAMPLE_EVENT, ROOT

DOC = ROOT / "docs" / "settings.md"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_its_exit_codes_in_its_help() -> None:
    found = subcommands()
    assert set(EXITS) == set(found)
    for name, parser in found.items():
        codes = EXITS[name]
        assert ExitCode.OK in codes and ExitCode.USAGE in codes, name
        text = parser.format_help()
        assert text.rstrip("\n").endswith(exit_help(name)), name
        for code, meaning in codes.items():
            assert f"  {int(code)}  {meaning}\n" in text + "\n", (name, code)


def test_the_exit_codes_are_in_docs_settings_md_as_declared() -> None:
    section = DOC.read_text().split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    table = {int(m.group(1)): (m.group(2), m.group(3)) for m in
             re.finditer(r"^\| (\d) \| `([A-Z_]+)` \| (.+) \|$", section, re.MULTILINE)}
    assert table == {int(code): (code.name, MEANING[code]) for code in ExitCode}
    per_command = dict(re.findall(r"^\| `podium ([a-z-]+)` \| (.+) \|$", section, re.MULTILINE))
    assert per_command == {name: exit_summary(name) for name in EXITS}


def test_cli_md_gives_submit_the_codes_of_the_table() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    submit = doc.split("### Exit codes", 1)[1].split("\n### ", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d) \|", submit, re.MULTILINE)}
    assert listed == {int(code) for code in EXITS["submit"]}


def test_one_usage_error_and_no_other_exit_constants_in_the_commands() -> None:
    for module in (ROOT / "server").rglob("*.py"):
        text = module.read_text()
        assert not re.search(r"^class \w*UsageError", text, re.MULTILINE) or \
            module.name == "command.py", module
        assert not re.search(r"^EXIT_[A-Z_]+\b", text, re.MULTILINE), module


@pytest.mark.parametrize("argv", [
    ("submit", "--server", "127.0.0.1:1", "--challenge", "nodules", str(NODULES_CSV)),
    ("submit", "--token", "t", "--challenge", "nodules", str(NODULES_CSV)),
    ("watch", "--server", "ftp://host", "--once"),
    ("score", "--event", str(EXAMPLE_EVENT), "--challenge", "lungs", str(NODULES_CSV)),
    ("tokens", "--event", "no-such-event.toml"),
    ("check-release", "--event", str(EXAMPLE_EVENT), "--allow", "  "),
    ("unseal", "no-such-archive.zip", "key"),
    ("serve", "--event", str(EXAMPLE_EVENT), "--scoring-timeout", "-1"),
    ("serve",),  # argparse's own: --event is required
])
def test_a_usage_error_anywhere_prints_one_line_and_exits_2(
        argv: tuple[str, ...], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    monkeypatch.delenv("PODIUM_SERVER", raising=False)
    assert podium(*argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert re.search(r"^podium(?: [a-z-]+)?: ", err.splitlines()[-1]), err


def test_the_network_code_is_the_same_for_submit_and_watch(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    assert podium("watch", "--server", url, "--once") == ExitCode.NETWORK
    assert podium("submit", "--server", url, "--token", "t", "--challenge", "nodules",
                  str(NODULES_CSV)) == ExitCode.NETWORK
    assert "cannot reach the server" in capsys.readouterr().err
