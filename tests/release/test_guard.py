from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from server.deid.secret import Keys
from server.release.guard import (
    anonymize,
    inspect_release,
    record_override,
    scan_release,
)

from .conftest import add_private, write_dicom

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys(b"release test secret, 32 bytes...")


def item(**attributes: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


# One DICOM per kind of identifying field: (attributes, expected tag, expected keyword path).
KINDS: dict[str, tuple[dict[str, Any], str, str]] = {
    "name": ({"PatientName": "DUPONT^JEANNE"}, "(0010,0010)", "PatientName"),
    "id": ({"PatientID": "IPP-0042137"}, "(0010,0020)", "PatientID"),
    "other ids": ({"OtherPatientIDsSequence": [item(PatientID="NIP 2 56 03")]},
                  "(0010,1002)", "OtherPatientIDsSequence"),
    "birth date": ({"PatientBirthDate": "19560302"}, "(0010,0030)", "PatientBirthDate"),
    "address": ({"PatientAddress": "3 rue des Lilas, Lyon"}, "(0010,1040)", "PatientAddress"),
    "institution": ({"InstitutionName": "Hôpital Nord"}, "(0008,0080)", "InstitutionName"),
    "physician": ({"ReferringPhysicianName": "HOUSE^GREGORY"}, "(0008,0090)",
                  "ReferringPhysicianName"),
    "operator": ({"OperatorsName": "MARTIN^PAUL"}, "(0008,1070)", "OperatorsName"),
    "accession": ({"AccessionNumber": "A19-55321"}, "(0008,0050)", "AccessionNumber"),
    "date": ({"StudyDate": "20190412"}, "(0008,0020)", "StudyDate"),
    "time": ({"AcquisitionTime": "101502.250"}, "(0008,0032)", "AcquisitionTime"),
    "station": ({"StationName": "CT-ROOM3"}, "(0008,1010)", "StationName"),
    "serial": ({"DeviceSerialNumber": "88123"}, "(0018,1000)", "DeviceSerialNumber"),
    "in a sequence": ({"RequestAttributesSequence": [item(AccessionNumber="A19-55321")]},
                      "(0008,0050)", "RequestAttributesSequence[0].AccessionNumber"),
    # A sequence the profile keeps (X/Z/U*: its UIDs replaced) is searched item by item...
    "deep in sequences": (
        {"ReferencedImageSequence": [item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                                          ReferencedSOPInstanceUID="1.2.3.4",
                                          PatientName="DUPONT^JEANNE")]},
        "(0010,0010)", "ReferencedImageSequence[0].PatientName"),
    # ... one it empties (X/Z: Z) is reported whole. With the hand-made list this study
    # reference was searched inside; Table E.1-1 empties it.
    "emptied sequence": (
        {"ReferencedStudySequence": [item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                                          ReferencedSOPInstanceUID="1.2.3.4",
                                          PatientName="DUPONT^JEANNE")]},
        "(0008,1110)", "ReferencedStudySequence"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_identifying_field_is_reported_with_its_tag(
        clean_release: Path, kind: str) -> None:
    attributes, tag, keyword = KINDS[kind]
    write_dicom(clean_release / "images" / "0007.dcm", seed=7, **attributes)

    findings = inspect_release(clean_release)

    assert [(f.file, f.tag, f.keyword) for f in findings] == [("images/0007.dcm", tag, keyword)]
    # The reason names the profile's action (the hand-made list named a category).
    expected = "patient identity" if keyword in ("PatientName", "PatientID") else "PS3.15 E.1-1"
    assert expected in findings[0].reason


def test_private_tags_are_reported_with_their_creator(clean_release: Path) -> None:
    add_private(clean_release / "images" / "0001.dcm")

    findings = inspect_release(clean_release)

    assert [(f.file, f.tag) for f in findings] == [("images/0001.dcm", "(0009,0010)"),
                                                   ("images/0001.dcm", "(0009,1001)")]
    assert findings[1].reason == "private tag (creator 'ACME CT 1.0')"


def test_a_clean_release_has_no_finding(clean_release: Path) -> None:
    inspection = scan_release(clean_release)

    assert inspection.findings == ()
    # Counted, so "clean" is never "found no DICOM at all".
    assert (inspection.files, inspection.dicom_files) == (6, 4)


def test_uids_and_patient_characteristics_are_not_flagged(clean_release: Path) -> None:
    write_dicom(clean_release / "images" / "0008.dcm", seed=8,
                StudyInstanceUID="1.2.840.113619.2.55.3.604688119.971.1239198123.537",
                IrradiationEventUID="1.3.12.2.1107.5.1.4.73512.30000019041206192540600000017",
                PatientAge="071Y", PatientSex="F", PatientWeight="71",
                SeriesDescription="THORAX SANS IV")

    assert inspect_release(clean_release) == []


def test_the_guard_reads_release_zips_too(clean_release: Path, tmp_path: Path) -> None:
    write_dicom(clean_release / "images" / "0007.dcm", seed=7, PatientName="DUPONT^JEANNE")
    given = tmp_path / "release.zip"
    with zipfile.ZipFile(given, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(clean_release.rglob("*")):
            archive.write(path, path.relative_to(clean_release).as_posix())

    assert inspect_release(given) == inspect_release(clean_release)
    assert [f.file for f in inspect_release(given)] == ["images/0007.dcm"]


def test_an_unreadable_dcm_is_reported_not_skipped(clean_release: Path) -> None:
    (clean_release / "images" / "0009.dcm").write_bytes(b"\x00" * 40)

    [finding] = inspect_release(clean_release)

    assert finding.file == "images/0009.dcm" and "cannot be read as DICOM" in finding.reason


def dirty_release(root: Path) -> Path:
    for index, (attributes, _, _) in enumerate(KINDS.values()):
        write_dicom(root / "images" / f"{index:04d}.dcm", seed=index, **attributes)
    add_private(root / "images" / "0000.dcm")
    write_dicom(root / "IM0001", seed=99, PatientName="X^Y", InstitutionName="CHU",
                StudyDate="20190101", SeriesDate="20190101",
                PatientBirthDate="19400101", StudyID="42")
    (root / "labels.csv").write_text("id,value\n0000,3.5\n", encoding="utf-8")
    return root


def test_anonymize_cleans_every_finding_and_keeps_the_image(tmp_path: Path) -> None:
    source = dirty_release(tmp_path / "dirty")
    before = inspect_release(source)
    assert len({f.file for f in before}) == len(KINDS) + 1

    report = anonymize(source, tmp_path / "clean", KEYS)

    out = tmp_path / "clean"
    assert inspect_release(out) == []
    assert (report.dicom_files, report.copied_files) == (len(KINDS) + 1, 1)
    assert report.attributes == len(before)
    assert (out / "labels.csv").read_bytes() == (source / "labels.csv").read_bytes()
    for original in sorted(source.rglob("*")):
        if original.suffix == ".csv" or not original.is_file():
            continue
        old = pydicom.dcmread(original)
        new = pydicom.dcmread(out / original.relative_to(source))
        assert new.PixelData == old.PixelData
        for keyword in ("Rows", "Columns", "PixelSpacing", "RescaleSlope", "RescaleIntercept",
                        "ImagePositionPatient", "PatientAge"):
            assert new.get(keyword) == old.get(keyword), keyword
        # UIDs are replaced now (the profile's U), the same way in every file.
        assert new.SOPInstanceUID == KEYS.uid(old.SOPInstanceUID)
        assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
        assert new.file_meta.TransferSyntaxUID == old.file_meta.TransferSyntaxUID
        assert new.PatientIdentityRemoved == "YES"
        # Blanked, not deleted: type 2 attributes stay present for tools that expect them;
        # a file with a PatientID gets its pseudonym in both instead.
        pseudonym = KEYS.pseudonym(old.PatientID) if old.PatientID else ""
        assert "PatientName" in new and str(new.PatientName) == pseudonym == new.PatientID


def test_anonymize_a_single_file(tmp_path: Path) -> None:
    source = write_dicom(tmp_path / "one.dcm", PatientName="DUPONT^JEANNE",
                         OtherPatientIDsSequence=[item(PatientID="7")])
    add_private(source)
    (tmp_path / "out").mkdir()

    report = anonymize(source, tmp_path / "out", KEYS)

    assert (report.dicom_files, report.attributes) == (1, 4)
    cleaned = pydicom.dcmread(tmp_path / "out" / "one.dcm")
    assert "OtherPatientIDsSequence" not in cleaned
    assert not any(element.tag.is_private for element in cleaned)
    assert inspect_release(tmp_path / "out" / "one.dcm") == []


def test_anonymize_never_writes_into_its_input(tmp_path: Path) -> None:
    source = dirty_release(tmp_path / "dirty")
    with pytest.raises(Exception, match="outside"):
        anonymize(source, source / "clean", KEYS)
    with pytest.raises(Exception, match="outside"):
        anonymize(source, source, KEYS)


def test_the_guard_points_to_the_profile_it_checks() -> None:
    # The hand-made list lived in docs/release.md; the profile's table (619 attributes) is
    # data in server/deid/table.py, and docs/deidentification.md says how it is applied.
    release = (ROOT / "docs" / "release.md").read_text(encoding="utf-8")
    assert "deidentification.md" in release and "Table E.1-1" in release


def write_event(tmp_path: Path, releases: dict[str, str | None]) -> Path:
    (tmp_path / "truth.csv").write_text("id,value\na,1\n", encoding="utf-8")
    blocks = ['[event]\nname = "Final day"\n']
    for slug, release in releases.items():
        block = (f'[[challenges]]\nslug = "{slug}"\ntitle = "{slug}"\nkind = "regression"\n'
                 f'duration_minutes = 60\ntruth = "truth.csv"\n')
        if release is not None:
            block += f'release = "{release}"\n'
        blocks.append(block)
    event = tmp_path / "event.toml"
    event.write_text("\n".join(blocks), encoding="utf-8")
    return event


def test_check_release_lists_offending_files_by_challenge(
        clean_release: Path, tmp_path: Path, podium: Callable[..., int],
        capsys: pytest.CaptureFixture[str]) -> None:
    dirty = dirty_release(tmp_path / "dirty")
    event = write_event(tmp_path, {"sarcopenia": "release", "edss": "dirty", "nodules": None})

    assert podium("check-release", "--event", str(event)) == 1

    out = capsys.readouterr().out
    assert re.search(r"^sarcopenia: .*: clean \(4 DICOM files among 6 files\)$", out, re.M)
    assert "nodules: no release in the event file, skipped" in out
    assert re.search(r"^edss: .*findings in 17 of 17 DICOM files$", out, re.M)
    im0001 = next(line for line in out.splitlines() if line.startswith("  IM0001: "))
    for named in ("StudyDate (0008,0020)", "SeriesDate (0008,0021)", "StudyID (0020,0010)",
                  "InstitutionName (0008,0080)", "PatientName (0010,0010)",
                  "PatientBirthDate (0010,0030)"):
        assert named in im0001
    assert "2 private tags in groups 0009" in out
    assert "  images/0013.dcm: RequestAttributesSequence[0].AccessionNumber (0008,0050)" in out
    assert len(inspect_release(dirty)) > 0


def test_check_release_exits_0_on_clean_releases(clean_release: Path, tmp_path: Path,
                                                 podium: Callable[..., int]) -> None:
    event = write_event(tmp_path, {"sarcopenia": "release"})
    assert podium("check-release", "--event", str(event)) == 0


def test_allow_prints_findings_exits_0_and_logs_the_reason(
        clean_release: Path, tmp_path: Path, podium: Callable[..., int],
        capsys: pytest.CaptureFixture[str]) -> None:
    dirty_release(tmp_path / "dirty")
    event = write_event(tmp_path, {"sarcopenia": "release", "edss": "dirty"})
    findings = len(inspect_release(tmp_path / "dirty"))
    data_dir = tmp_path / "data"

    reason = "dates needed for the task; approved by the DPO"
    assert podium("check-release", "--event", str(event), "--allow", reason,
                  "--data-dir", str(data_dir)) == 0
    assert podium("check-release", "--event", str(event), "--allow", "  ",
                  "--data-dir", str(data_dir)) == 2

    out = capsys.readouterr().out
    assert "images/0000.dcm" in out and f"{findings} findings allowed" in out
    [line] = (data_dir / "release-overrides.log").read_text(encoding="utf-8").splitlines()
    logged = json.loads(line)
    assert logged["reason"] == reason
    assert logged["findings"] == findings
    assert logged["challenges"] == {"edss": findings}
    assert logged["event"] == str(event.resolve())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", logged["time"])


def test_override_log_uses_the_given_clock(tmp_path: Path) -> None:
    moment = datetime(2019, 10, 4, 11, 58, tzinfo=UTC)
    log = record_override(tmp_path, Path("event.toml"), "ok", {"a": 2, "b": 1},
                          now=lambda: moment)
    record_override(tmp_path, Path("event.toml"), "again", {"a": 1}, now=lambda: moment)

    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(x["time"], x["reason"], x["findings"]) for x in lines] == [
        ("2019-10-04T11:58:00Z", "ok", 3), ("2019-10-04T11:58:00Z", "again", 1)]


def test_podium_anonymize_command(tmp_path: Path, podium: Callable[..., int],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = dirty_release(tmp_path / "dirty")
    findings = len(inspect_release(source))

    secret = tmp_path / "organizers" / "deid-secret"
    assert podium("anonymize", str(source), str(tmp_path / "clean"), "--secret", str(secret)) == 0

    out = capsys.readouterr().out
    assert f"cleaned {len(KINDS) + 1} DICOM files" in out
    # Replaced rather than blanked now: pseudonyms, dummies (PS3.15 basic profile).
    assert f"{findings} identifying attributes replaced or removed" in out
    assert secret.stat().st_mode & 0o777 == 0o600
    assert "1 other file copied as it is" in out
    assert inspect_release(tmp_path / "clean") == []
    assert podium("anonymize", str(tmp_path / "missing"), str(tmp_path / "x")) == 2



def test_attributes_repeated_per_frame_are_counted_once_per_file(
        clean_release: Path, podium: Callable[..., int], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    frames = [item(FrameContentSequence=[item(FrameAcquisitionDateTime=f"2019041210150{i}")])
              for i in range(5)]
    write_dicom(clean_release / "images" / "multiframe.dcm", seed=5,
                PerFrameFunctionalGroupsSequence=frames)
    event = write_event(tmp_path, {"edss": "release"})

    assert len(inspect_release(clean_release)) == 5
    assert podium("check-release", "--event", str(event)) == 1

    out = capsys.readouterr().out
    assert ("  images/multiframe.dcm: PerFrameFunctionalGroupsSequence[*].FrameContentSequence[*]"
            ".FrameAcquisitionDateTime (0018,9074) ×5") in out


def test_check_release_on_files_of_real_tools(tmp_path: Path, podium: Callable[..., int],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from dicomanonymizer.simpledicomanonymizer import (
        anonymize_dicom_file,
        initialize_actions_2024b,
    )
    from pydicom.data import get_testdata_file

    raw, cleaned = tmp_path / "raw", tmp_path / "cleaned"
    raw.mkdir(), cleaned.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        source = Path(str(get_testdata_file(name, download=False)))
        (raw / name).write_bytes(source.read_bytes())
        anonymize_dicom_file(str(source), str(cleaned / name),
                             base_rules_gen=initialize_actions_2024b)
    event = write_event(tmp_path, {"edss": "raw"})
    assert podium("check-release", "--event", str(event)) == 1
    out = capsys.readouterr().out
    ct = next(line for line in out.splitlines() if line.startswith("  CT_small.dcm: "))
    for named in ("PatientName (0010,0010)", "InstitutionName (0008,0080)",
                  "StudyDate (0008,0020)", "private tags in groups 0009, 0011, 0019"):
        assert named in ct
    event = write_event(tmp_path, {"edss": "cleaned"})
    assert podium("check-release", "--event", str(event)) == 0
    assert "clean (2 DICOM files among 2 files)" in capsys.readouterr().out


def test_anonymize_refuses_what_cannot_be_cleaned(tmp_path: Path, podium: Callable[..., int],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = write_dicom(tmp_path / "in" / "0001.dcm", Modality="US", PatientName="X^Y")
    secret = tmp_path / "deid-secret"
    assert podium("anonymize", str(source.parent), str(tmp_path / "out"),
                  "--secret", str(secret)) == 1
    err = capsys.readouterr().err
    assert "0001.dcm cannot be de-identified: modality US" in err
    assert not (tmp_path / "out" / "0001.dcm").exists()
