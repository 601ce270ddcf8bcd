"""Settings declared once (server/settings.py, server/config.py, server/remote.py): the options
generated from them, the values read back, their bounds, and docs/settings.md compared with the
declarations both ways."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.cli import _parser, config_from
from server.command import UsageError
from server.config import Config
from server.remote import Remote
from server.settings import Setting, add_arguments, declared, flag_for, setting, values
from tests.helpers import EXAMPLE_EVENT, PODIUM, ROOT, AppServer

SETTINGS = [*declared(Config), *declared(Remote)]
DOC = ROOT / "docs" / "settings.md"
# The flags whose name the command line's contract (docs/cli.md) fixes otherwise.
SPEC_FLAGS = {"event_path": "--event"}


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings}


def parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def test_every_field_is_a_setting_named_after_its_flag() -> None:
    for cls in (Config, Remote):
        assert [f.name for f in dataclasses.fields(cls)] == [s.name for s in declared(cls)]
    for s in SETTINGS:
        assert s.flag == SPEC_FLAGS.get(s.name, flag_for(s.name)), s.name
        assert s.help and s.commands, s.name
    assert flag_for("scoring_timeout_s") == "--scoring-timeout"
    assert flag_for("scoring_memory_mb") == "--scoring-memory-mb"


def test_each_command_takes_exactly_the_settings_declared_for_it() -> None:
    found = commands()
    for s in SETTINGS:
        assert set(s.commands) <= set(found), s.name
    for name, parser in found.items():
        wanted = {s.name: s for s in SETTINGS if name in s.commands}
        given = {dest: action for dest, action in options(parser).items() if dest in
                 {s.name for s in SETTINGS}}
        assert set(given) == set(wanted), name
        for dest, action in given.items():
            s = wanted[dest]
            assert action.option_strings == [s.flag]
            # argparse holds no default: the declaration's is the only one.
            assert action.default is None and action.required == s.required
            if not s.required:
                assert s.shown_default().replace("%", "%%") in str(action.help)


def test_the_defaults_are_the_declarations() -> None:
    config = config_from(parse("serve", "--event", str(EXAMPLE_EVENT)))
    for s in declared(Config):
        expected = s.default
        if s.name == "event_path":
            expected = EXAMPLE_EVENT
        elif s.name == "data_dir":
            expected = Path(s.default).resolve()
        assert getattr(config, s.name) == expected, s.name
    assert config.scoring_workers == 2 and config.port == 8080
    assert config.public_url == "http://127.0.0.1:8080"


def test_every_server_setting_is_settable_from_the_command_line() -> None:
    argv = ["serve", "--event", str(EXAMPLE_EVENT), "--host", "0.0.0.0", "--port", "9000",
            "--data-dir", "/tmp/podium-elsewhere", "--database-url", "postgresql://db/x",
            "--base-url", "https://podium.example", "--scoring-workers", "0",
            "--scoring-timeout", "30", "--scoring-memory-mb", "0",
            "--upload-idle-timeout", "5.5", "--upload-burst", "1", "--upload-every", "60",
            "--max-pending-per-team", "1", "--storage-quota-mb", "100",
            "--storage-reserve-mb", "0", "--allow-release", "approved by the DPO",
            "--max-connections", "100", "--max-connections-per-client", "0",
            "--header-timeout", "2", "--keepalive-timeout", "3",
            "--smtp-host", "smtp.chu.example", "--smtp-port", "2525",
            "--smtp-from", "podium@jfr.example", "--digest-days", "tue,fri",
            "--intake-workers", "2", "--inclusion-upload-mb", "100",
            "--inclusion-unzipped-mb", "400", "--inclusion-zip-entries", "50",
            "--dicom-port", "11112", "--dicom-ae-title", "PODIUM_JFR", "--dicom-quiet", "12"]
    config = config_from(parse(*argv))
    assert dataclasses.asdict(config) == {
        "event_path": EXAMPLE_EVENT, "host": "0.0.0.0", "port": 9000,
        "data_dir": Path("/tmp/podium-elsewhere"), "database_url": "postgresql://db/x",
        "base_url": "https://podium.example", "scoring_workers": 0, "scoring_timeout_s": 30.0,
        "scoring_memory_mb": 0, "upload_idle_timeout_s": 5.5, "upload_burst": 1,
        "upload_every_s": 60.0, "max_pending_per_team": 1, "storage_quota_mb": 100.0,
        "storage_reserve_mb": 0.0, "allow_release": "approved by the DPO",
        "max_connections": 100, "max_connections_per_client": 0, "header_timeout_s": 2.0,
        "keepalive_timeout_s": 3.0, "smtp_host": "smtp.chu.example", "smtp_port": 2525,
        "smtp_from": "podium@jfr.example", "digest_days": "tue,fri", "intake_workers": 2,
        "inclusion_upload_mb": 100.0, "inclusion_unzipped_mb": 400.0,
        "inclusion_zip_entries": 50,
        "dicom_port": 11112, "dicom_ae_title": "PODIUM_JFR", "dicom_quiet_s": 12.0}
    assert "postgresql://db/x" not in repr(config)  # a secret stays out of logs


def test_the_flag_beats_the_environment_which_beats_the_default() -> None:
    args = parse("export", "--event", str(EXAMPLE_EVENT), "out.xlsx")
    assert values(args, Config, "export", {})["event_path"] == EXAMPLE_EVENT
    assert "database_url" not in values(args, Config, "export", {"PODIUM_DATABASE_URL": ""})
    assert values(args, Config, "export", {"PODIUM_DATABASE_URL": "postgresql://env/x"})[
        "database_url"] == "postgresql://env/x"
    flagged = parse("export", "--event", str(EXAMPLE_EVENT), "--database-url",
                    "postgresql://flag/x", "out.xlsx")
    assert values(flagged, Config, "export", {"PODIUM_DATABASE_URL": "postgresql://env/x"})[
        "database_url"] == "postgresql://flag/x"
    watch = parse("watch")
    assert Remote(**values(watch, Remote, "watch", {"PODIUM_SERVER": "10.0.0.5:8080",
                                                    "PODIUM_TOKEN": "t"})) == \
        Remote(server="10.0.0.5:8080", token="t")
    assert "secret-token" not in repr(Remote(token="secret-token"))


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--port", "-1", "--port must be a number >= 0, got -1"),
    ("--scoring-workers", "-2", "--scoring-workers must be a number >= 0, got -2"),
    ("--header-timeout", "0", "--header-timeout must be a number of seconds > 0, got 0"),
    ("--upload-every", "inf", "--upload-every must be a finite number, got inf"),
    ("--upload-burst", "0", "--upload-burst must be a number >= 1, got 0"),
    ("--storage-quota-mb", "0", "--storage-quota-mb must be a number of MiB > 0, got 0"),
    ("--storage-reserve-mb", "-1", "--storage-reserve-mb must be a number of MiB >= 0, got -1"),
])
def test_a_value_out_of_bounds_is_a_usage_error_naming_the_flag(flag: str, value: str,
                                                               message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        config_from(parse("serve", "--event", str(EXAMPLE_EVENT), flag, value))


def test_serve_refuses_a_bad_value_before_starting_anything(tmp_path: Path) -> None:
    out = subprocess.run([*PODIUM, "serve", "--event", str(EXAMPLE_EVENT), "--data-dir",
                          str(tmp_path), "--max-pending-per-team", "0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr == "podium: --max-pending-per-team must be a number >= 1, got 0\n"
    assert not any(tmp_path.iterdir())  # no database, no tokens
    not_a_number = subprocess.run([*PODIUM, "serve", "--event", str(EXAMPLE_EVENT), "--port",
                                   "x"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert not_a_number.returncode == 2
    assert "--port: invalid int value: 'x'" in not_a_number.stderr


def test_the_upload_limits_set_on_the_command_line_are_the_servers(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    config = config_from(parse("serve", "--event", str(example_event), "--scoring-workers", "0",
                               "--max-pending-per-team", "1", "--upload-burst", "1",
                               "--upload-every", "3600"))
    limits = {name: getattr(config, name) for name in
              ("max_pending_per_team", "upload_burst", "upload_every_s")}
    server = AppServer(example_event, tmp_path / "data", database_url,
                       scoring_workers=config.scoring_workers, config_overrides=limits).start()
    try:
        for slug in ("nodules", "edss"):
            server.act(slug, "start")
        token = server.tokens()["Myelin Minds"]
        table = b"id,value\n"
        status, _ = server.upload("nodules", token, "a.csv", table)
        assert status == 202  # queued, and never scored: no scoring worker
        status, body = server.upload("nodules", token, "b.csv", table)
        assert (status, body["error"]["code"]) == (429, "too_many_pending")
        status, body = server.upload("edss", token, "c.csv", table)
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert body["error"]["retry_after_s"] > 3000
    finally:
        server.stop()


def test_every_server_setting_is_read_by_the_server() -> None:
    # Read as `config.X`, `app[CONFIG].X`, `remote.X`, or by the class's own methods.
    source = "\n".join(p.read_text() for p in (ROOT / "server").rglob("*.py")
                       if p.name != "settings.py")
    unread = [s.name for s in SETTINGS
              if not re.search(rf"(?:config|CONFIG\]|remote|self)\.{s.name}\b", source)]
    assert not unread, f"declared but never read: {unread}"


def test_a_new_setting_is_one_field() -> None:
    @dataclass(frozen=True)
    class Toy:
        patience_s: float = setting(2.5, "how long to wait", commands=("toy",),
                                    env="TOY_PATIENCE", metavar="SECONDS", minimum=0,
                                    above=True)

    parser = argparse.ArgumentParser(prog="toy")
    add_arguments(parser, Toy, "toy")
    assert "--patience SECONDS  how long to wait (or TOY_PATIENCE); default: 2.5" in \
        " ".join(parser.format_help().split()).replace("SECONDS how", "SECONDS  how")
    assert Toy(**values(parser.parse_args([]), Toy, "toy", {})) == Toy()
    assert Toy(**values(parser.parse_args([]), Toy, "toy", {"TOY_PATIENCE": "4"})).patience_s \
        == 4.0
    assert Toy(**values(parser.parse_args(["--patience", "1"]), Toy, "toy",
                        {"TOY_PATIENCE": "4"})).patience_s == 1.0
    with pytest.raises(UsageError, match="TOY_PATIENCE='soon': expected float"):
        values(parser.parse_args([]), Toy, "toy", {"TOY_PATIENCE": "soon"})
    with pytest.raises(UsageError, match="TOY_PATIENCE must be a number of seconds > 0"):
        values(parser.parse_args([]), Toy, "toy", {"TOY_PATIENCE": "0"})
    assert math.isclose(declared(Toy)[0].default, 2.5)


# -- docs/settings.md --------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def documented_settings() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    text = DOC.read_text()
    for title in ("Server settings", "Client settings"):
        section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        for line in section.splitlines():
            cells = _cells(line)
            if line.startswith("| `") and len(cells) == 6:
                name = cells[0].strip("`")
                assert name not in rows, f"{name} twice in docs/settings.md"
                rows[name] = cells
    return rows


def _documented_as(s: Setting) -> list[str]:
    return [f"`{s.name}`", f"`{s.flag} {s.metavar or s.name.upper()}`",
            f"`{s.env}`" if s.env else "", s.shown_default(), ", ".join(s.commands)]


def test_every_setting_is_in_docs_settings_md_as_declared_and_nothing_else_is() -> None:
    rows = documented_settings()
    assert set(rows) == {s.name for s in SETTINGS}
    for s in SETTINGS:
        cells = rows[s.name]
        cells[3] = cells[3].strip("`")
        assert cells[:5] == _documented_as(s), f"docs/settings.md's row for {s.name}"
        assert cells[5], f"{s.name} has no description in docs/settings.md"


def test_every_flag_the_docs_quote_is_an_option_of_a_podium_command() -> None:
    known = {option for parser in commands().values() for action in parser._actions
             for option in action.option_strings}
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in docs:
        if path.name.startswith("benchmarks"):
            continue  # the benchmarks' own scripts and their flags
        quoted = quoted_flags(path.read_text())
        assert quoted <= known, f"{path.name} quotes flags no command has: {quoted - known}"


def quoted_flags(text: str) -> set[str]:
    """The flags a page gives: in a `--flag …` span, or after `podium ` in a span or a line of
    a code block (other tools' flags, pytest's, are left alone)."""
    found: set[str] = set()
    spans = re.findall(r"`([^`\n]+)`", text)
    spans += [line for line in text.splitlines() if line.lstrip().startswith("podium ")]
    for span in spans:
        if span.startswith("--"):
            found.add(re.match(r"--[a-z][a-z-]*", span).group())  # type: ignore[union-attr]
        elif "podium " in span:
            found |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", span.split("podium ", 1)[1]))
    return found


def test_the_readme_points_at_the_settings() -> None:
    assert "docs/settings.md" in (ROOT / "README.md").read_text()
    assert "settings.md" in (ROOT / "docs" / "operations.md").read_text()
