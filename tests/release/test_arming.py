"""server/release/arming.py: the guard's verdict on a release is kept beside its archive, so
a restart reads it instead of opening every file again; a changed release, changed rules or a
damaged record mean a new scan. The releases are the example event's, written by pydicom."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

import server.release
from server.event import parse_event
from server.release import arming


def _counting_scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    scanned: list[Path] = []
    real = server.release.scan_release

    def scan(source: Path) -> server.release.guard.Inspection:
        scanned.append(Path(source))
        return real(source)

    monkeypatch.setattr(server.release, "scan_release", scan)
    return scanned


def _verdicts(event: Path, data: Path) -> dict[str, tuple[bool, list[dict[str, str]]]]:
    return {a.slug: (a.armed, a.findings)
            for a in arming.prepare(parse_event(event), data, allow_reason=None)}


def _name_a_patient(event: Path) -> Path:
    dicom = sorted((event.parent / "release" / "nodules").glob("*.dcm"))[0]
    dataset = pydicom.dcmread(dicom)
    dataset.PatientName = "DOE^JANE"
    dataset.save_as(dicom)
    return dicom


def test_an_unchanged_release_is_not_read_again(example_event: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _name_a_patient(example_event)
    scanned = _counting_scans(monkeypatch)
    first = _verdicts(example_event, tmp_path / "data")
    releases = len(scanned)
    assert releases >= 1 and first["nodules"][0] is False       # held back, and why
    assert any(f["keyword"] == "PatientName" for f in first["nodules"][1])
    assert _verdicts(example_event, tmp_path / "data") == first  # the same verdict...
    assert len(scanned) == releases                               # ...without a file read


def test_a_changed_release_changed_rules_or_a_damaged_record_are_scanned_again(
        example_event: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    scanned = _counting_scans(monkeypatch)
    clean = _verdicts(example_event, data)
    assert clean["nodules"] == (True, [])

    scanned.clear()
    _name_a_patient(example_event)               # the release folder changed: packed again
    named = _verdicts(example_event, data)
    assert [p.name for p in scanned] == ["nodules"]
    assert named["nodules"][0] is False

    scanned.clear()
    monkeypatch.setattr(arming, "_rules_digest", lambda: "other rules")
    assert _verdicts(example_event, data) == named
    assert len(scanned) == len(clean)            # every release read again under new rules

    scanned.clear()
    (data / "releases" / "nodules" / arming.GUARD_CACHE).write_text("{not json")
    assert _verdicts(example_event, data) == named
    assert [p.name for p in scanned] == ["nodules"]
