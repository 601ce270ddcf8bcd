"""The engine, attribute by attribute against Table E.1-1, on real PHI-like files, across the
files of a series and of a patient, and on what it must refuse."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from deid_data import data as deid_data
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from server.deid import Dates, Keys, Policy, deidentify, deidentify_file, read_dicom
from server.deid.audit import audit
from server.deid.engine import DEFER_BYTES, IMPLEMENTATION_UID
from server.deid.policy import RELEASE, resolve
from server.deid.values import dummy, is_blank, shift_date, shift_datetime
from tests.deid.synthetic import NESTING, buildable, every_attribute_dataset

KEYS = Keys(b"engine test secret of 32 bytes..")
OTHER_KEYS = Keys(b"another event's secret, 32 bytes")
BASIC = Policy()
ALL_OPTIONS = Policy(dates=Dates.SHIFT, patient_characteristics=True, clean_descriptors=True)
FULL_DATES = Policy(dates=Dates.KEEP, patient_characteristics=True)
DEID_DATA = Path(deid_data.__file__).parent
PIXEL_DATA = 0x7FE00010
# Words of the synthetic samples that identify (server/deid tests/synthetic.py SAMPLES).
IDENTIFYING_WORDS = ("DUPONT", "JEANNE", "Hopital Nord 12", "2019", "42137")


@pytest.fixture(scope="module", params=[BASIC, ALL_OPTIONS, FULL_DATES],
                ids=["basic", "shifted-dates+characteristics+descriptors", "full-dates"])
def cleaned(request: pytest.FixtureRequest) -> tuple[Policy, Dataset, Dataset, Any]:
    policy = request.param
    original = every_attribute_dataset()
    dataset = every_attribute_dataset()
    result = deidentify(dataset, policy, KEYS)
    return policy, original, dataset, result


def check_item(original: Dataset, cleaned: Dataset, policy: Policy, offset: int | None,
               top: bool) -> set[str]:
    """Asserts each attribute's action; returns the codes seen."""
    seen = set()
    for attribute in buildable():
        tag, keyword = attribute.tag, attribute.keyword
        before, after = original[tag], cleaned.get(tag)
        code = resolve(attribute, policy)
        seen.add(code)
        if top and keyword in ("PatientID", "PatientName"):
            assert after.value == KEYS.pseudonym(original.PatientID), keyword
            continue
        if code == "X":
            assert after is None, keyword
        elif code == "Z":
            assert after is not None and is_blank(after.value), keyword
        elif code == "D":
            assert after is not None, keyword
            if attribute.vr == "SQ":
                assert len(after.value) == 1 and len(after.value[0]) == 0, keyword
            elif attribute.vr == "UI":
                assert after.value == KEYS.uid(before.value), keyword
            else:
                assert after.value == dummy(after.VR), keyword
        elif code == "U":
            assert after.value == KEYS.uid(before.value), keyword
        elif code in ("K", "C", "U*") and attribute.vr == "SQ":
            # Kept and walked: what the table does not name is kept, UIDs are replaced.
            [item] = after.value
            assert item.CodeValue == "T-32000", keyword
            assert item.ReferencedSOPInstanceUID == KEYS.uid(
                before.value[0].ReferencedSOPInstanceUID), keyword
        elif code == "K":
            assert after.value == before.value, keyword
        elif code == "C" and attribute.vr == "DA":
            assert offset is not None and after.value == shift_date(before.value, offset)
        elif code == "C" and attribute.vr == "DT":
            assert offset is not None and after.value == shift_datetime(before.value, offset)
        elif code == "C" and (attribute.vr == "TM" or keyword == "TimezoneOffsetFromUTC"):
            assert after.value == before.value, keyword  # a whole-day shift keeps times
        elif code == "C" and attribute.vr in ("OB", "OW"):
            # Binary timestamps cannot be shifted: the Basic Profile's action instead.
            basic = resolve(attribute, BASIC)
            assert (after.value == dummy(after.VR)) if basic == "D" else is_blank(after.value)
        elif code == "C":
            text = str(after.value)
            assert not any(word.upper() in text.upper() for word in IDENTIFYING_WORDS), keyword
            # Cleaning only takes out: every word left was in the original.
            assert set(text.split()) <= set(str(before.value).split()), keyword
        else:
            raise AssertionError(f"{keyword}: code {code} not checked")
    return seen


def test_every_attribute_gets_its_action_at_the_top_and_in_sequences(
        cleaned: tuple[Policy, Dataset, Dataset, Any]) -> None:
    policy, original, dataset, result = cleaned
    assert result.accepted
    seen = check_item(original, dataset, policy, result.date_offset_days, top=True)
    seen |= check_item(original[NESTING][0], dataset[NESTING][0], policy,
                       result.date_offset_days, top=False)
    assert seen >= {"X", "Z", "D", "U", "U*"}  # the Basic Profile has no K
    if policy is not BASIC:
        assert "K" in seen
    if policy is ALL_OPTIONS:
        assert "C" in seen
    # What the table does not name is kept.
    assert dataset.Modality == "CT" and dataset.SOPClassUID == CTImageStorage
    assert dataset.PixelData == original.PixelData


def test_the_profile_and_options_are_declared(
        cleaned: tuple[Policy, Dataset, Dataset, Any]) -> None:
    policy, _, dataset, _ = cleaned
    assert dataset.PatientIdentityRemoved == "YES"
    codes = [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning)
             for i in dataset.DeidentificationMethodCodeSequence]
    assert codes[0] == ("113100", "DCM", "Basic Application Confidentiality Profile")
    expected = {BASIC: [], ALL_OPTIONS: ["113105", "113107", "113108"],
                FULL_DATES: ["113106", "113108"]}[policy]
    assert [c[0] for c in codes[1:]] == expected
    assert len(dataset.DeidentificationMethod) <= 64
    assert dataset.LongitudinalTemporalInformationModified == {
        BASIC: "REMOVED", ALL_OPTIONS: "MODIFIED", FULL_DATES: "UNMODIFIED"}[policy]
    # The File Meta Information now describes Podium.
    assert dataset.file_meta.ImplementationClassUID == IMPLEMENTATION_UID
    assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID


def test_the_copy_is_a_valid_file_and_check_release_agrees_with_the_engine(
        cleaned: tuple[Policy, Dataset, Dataset, Any]) -> None:
    policy, original, dataset, result = cleaned
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    again = pydicom.dcmread(io.BytesIO(out.getvalue()))
    assert again.PatientID == result.pseudonym
    # What check-release flags on the original is exactly what the engine changed.
    flagged = {flag.path for flag in audit(original, policy)}
    changed = {change.path for change in result.changes if change.identifying}
    assert flagged == changed
    assert list(audit(again, policy)) == []


# --- real PHI-like files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_brains(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """deid-data's two head CTs of "SIMPSON^HOMER^J^", full of names, dates, addresses and
    private tags. They are stored as secondary captures, which the engine refuses; relabelled
    as the CT images they are (nothing else changed) they go through."""
    folder = tmp_path_factory.mktemp("brains")
    paths = []
    for name in ("ctbrain1.dcm", "ctbrain2.dcm"):
        ds = pydicom.dcmread(DEID_DATA / "humans" / name)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.save_as(folder / name)
        paths.append(folder / name)
    return paths


PHI = ("SIMPSON", "HOMER", "00007041776", "SPRINGFIELD", "Evergreen Terrace", "HIBBARD",
       "RIVERIA", "SGHCT01A", "999887722", "M1212121", "20230101", "20200704", "CCHS",
       "SIEMENS CSA HEADER")


def test_real_files_keep_no_phi_and_their_pixels(ct_brains: list[Path], tmp_path: Path) -> None:
    results = []
    for source in ct_brains:
        target = tmp_path / "out" / source.name
        result = deidentify_file(source, target, ALL_OPTIONS, KEYS)
        assert result.accepted, result.rejection
        results.append(result)
        written = target.read_bytes()
        for word in PHI:
            assert word.encode() not in written, (source.name, word)
        old, new = pydicom.dcmread(source), pydicom.dcmread(target)
        assert not any(element.tag.is_private for element in new.iterall())
        assert new.PixelData == old.PixelData  # JPEG fragments as they were, byte for byte
        assert new.file_meta.TransferSyntaxUID == old.file_meta.TransferSyntaxUID
        assert (new.Modality, new.PatientAge, new.PatientSex) == ("CT", "75Y", "M")
        assert new.AccessionNumber == "" and new.InstitutionName == "ANONYMIZED"  # Z, X/Z/D
        assert new.SeriesDescription == old.SeriesDescription  # cleaned: nothing to remove
        assert new.preamble == b"\x00" * 128
        assert list(audit(new, RELEASE)) == []  # dates declared shifted (113107)
    # One patient: one pseudonym, one offset.
    assert {r.pseudonym for r in results} == {KEYS.pseudonym("00007041776")}
    assert len({r.date_offset_days for r in results}) == 1


def write_slice(path: Path, *, patient: str, study_date: str, study: str, series: str,
                number: int, references: str | None = None, size: int = 8) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[patient, series, str(number)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "CT_ROOM_3"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study, "frame"])
    ds.PatientID, ds.PatientName, ds.Modality = patient, f"{patient}^X", "CT"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime, ds.InstanceNumber = "101502", str(number)
    if references:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, references
        ds.ReferencedImageSequence = [ref]
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(size * size, dtype=np.uint16) % 4096).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_series_stays_a_series_and_references_follow(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    first = write_slice(tmp_path / "1.dcm", patient="IPP1", study_date="20190412", study=study,
                        series=series, number=1)
    first_uid = pydicom.dcmread(first).SOPInstanceUID
    second = write_slice(tmp_path / "2.dcm", patient="IPP1", study_date="20190412",
                         study=study, series=series, number=2, references=first_uid)
    outs = {}
    for keys, name in ((KEYS, "a"), (OTHER_KEYS, "b")):
        for source in (first, second):
            assert deidentify_file(source, tmp_path / name / source.name, BASIC, keys).accepted
        outs[name] = [pydicom.dcmread(tmp_path / name / s.name) for s in (first, second)]
    one, two = outs["a"]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert one.get(keyword) == two.get(keyword) == KEYS.uid(pydicom.dcmread(first)
                                                               .get(keyword))
        assert outs["b"][0].get(keyword) != one.get(keyword)  # another secret, other UIDs
        assert UID(one.get(keyword)).is_valid and one.get(keyword).startswith("2.25.")
    assert one.SOPInstanceUID != two.SOPInstanceUID
    # The second slice still points at the first one.
    assert two.ReferencedImageSequence[0].ReferencedSOPInstanceUID == one.SOPInstanceUID
    assert two.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert "SourceApplicationEntityTitle" not in one.file_meta


def test_dates_move_by_one_offset_per_patient(tmp_path: Path) -> None:
    exams = {("IPP1", "20190412"), ("IPP1", "20200105"), ("IPP2", "20190412")}
    shifted = {}
    for index, (patient, day) in enumerate(sorted(exams)):
        source = write_slice(tmp_path / f"{index}.dcm", patient=patient, study_date=day,
                             study=generate_uid(), series=generate_uid(), number=1)
        result = deidentify_file(source, tmp_path / "out" / f"{index}.dcm", ALL_OPTIONS, KEYS)
        out = pydicom.dcmread(tmp_path / "out" / f"{index}.dcm")
        assert out.StudyDate == out.SeriesDate == out.ContentDate
        assert out.StudyTime == "101502"
        shifted[patient, day] = (out.StudyDate, result.date_offset_days)
    offset = KEYS.date_offset_days("IPP1")
    assert -3652 <= offset <= -366
    assert shifted["IPP1", "20190412"] == (shift_date("20190412", offset), offset)
    assert shifted["IPP1", "20200105"] == (shift_date("20200105", offset), offset)
    assert shifted["IPP2", "20190412"][1] == KEYS.date_offset_days("IPP2") != offset


def test_pixel_data_is_left_on_disk_until_the_copy_is_written(tmp_path: Path) -> None:
    size = 512  # 512 KB of pixels: more than DEFER_BYTES
    assert size * size * 2 > DEFER_BYTES
    source = write_slice(tmp_path / "big.dcm", patient="IPP9", study_date="20190412",
                         study=generate_uid(), series=generate_uid(), number=1, size=size)
    dataset = read_dicom(source)
    assert deidentify(dataset, BASIC, KEYS).accepted
    pixels = dataset.get_item(PIXEL_DATA, keep_deferred=True)
    assert isinstance(pixels, RawDataElement) and pixels.value is None  # never read
    dataset.save_as(tmp_path / "copy.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "copy.dcm").PixelData == pydicom.dcmread(source).PixelData


# --- rejections -------------------------------------------------------------------------------


def synthetic(**attributes: Any) -> Dataset:
    ds = every_attribute_dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(("attributes", "code"), [
    ({"BurnedInAnnotation": "YES"}, "burned_in_annotation"),
    ({"SOPClassUID": SecondaryCaptureImageStorage}, "secondary_capture"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1"}, "encapsulated_document"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.11"}, "structured_report"),
    *[({"Modality": modality}, "text_in_pixels") for modality in ("US", "OT", "DOC", "SC")],
])
def test_what_pixels_may_name_is_rejected_untouched(attributes: dict[str, Any],
                                                    code: str) -> None:
    dataset = synthetic(**attributes)
    before = len(dataset)
    result = deidentify(dataset, ALL_OPTIONS, KEYS)
    assert result.rejection is not None and result.rejection.code == code
    assert not result.accepted and len(dataset) == before and result.changes == ()


@pytest.mark.parametrize(("path", "code"), [
    ("ultrasounds/GREYSCALE_IMAGE.dcm", "burned_in_annotation"),
    ("dicom-cookies/image1.dcm", "secondary_capture"),
])
def test_real_files_that_cannot_be_cleaned_write_nothing(path: str, code: str,
                                                         tmp_path: Path) -> None:
    target = tmp_path / "out.dcm"
    result = deidentify_file(DEID_DATA / path, target, ALL_OPTIONS, KEYS)
    assert result.rejection is not None and result.rejection.code == code
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"id,value\na,1\n", b"\x00" * 200,
                                     b"\x00" * 128 + b"DICM" + b"\x02\x00"])
def test_a_file_that_is_not_dicom_is_rejected(content: bytes, tmp_path: Path) -> None:
    source = tmp_path / "upload.dcm"
    source.write_bytes(content)
    result = deidentify_file(source, tmp_path / "out" / "upload.dcm", BASIC, KEYS)
    assert result.rejection is not None and result.rejection.code == "not_dicom"
    assert "upload.dcm" in result.rejection.message
    assert not (tmp_path / "out").exists()
