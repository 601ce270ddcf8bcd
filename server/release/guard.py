"""The GDPR guard: identifying DICOM attributes in a release, found and removed.

The attributes checked are those of the DICOM basic application-level confidentiality profile
(PS3.15 Annex E) that name or point to a person, a place or a moment: `IDENTIFYING` is the one
list, used by both `inspect_release` and `anonymize`. UIDs are left alone: a replaced UID looks
like an original one, so flagging them would flag every release. Patient characteristics (age,
sex, size, weight) and free-text descriptions are not flagged either: challenges often release
them on purpose.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from server.errors import ReleaseError

PATIENT_NAME = "patient name"
PATIENT_ID = "patient identifier"
BIRTH = "patient birth date"
CONTACT = "patient address or contact"
INSTITUTION = "institution"
STAFF = "physician or operator"
ORDER = "accession or study identifier"
DATE = "date or time"
DEVICE = "station or device identifier"
PRIVATE = "private tag"

IDENTIFYING: dict[str, str] = {
    **dict.fromkeys((
        "PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    ), PATIENT_NAME),
    **dict.fromkeys((
        "PatientID", "OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence", "MedicalRecordLocator", "AdmissionID",
        "IssuerOfAdmissionIDSequence",
    ), PATIENT_ID),
    **dict.fromkeys(("PatientBirthDate", "PatientBirthTime"), BIRTH),
    **dict.fromkeys((
        "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation",
        "CountryOfResidence", "RegionOfResidence", "MilitaryRank", "BranchOfService",
        "ResponsiblePerson", "ResponsibleOrganization", "CurrentPatientLocation",
        "PatientInstitutionResidence",
    ), CONTACT),
    **dict.fromkeys((
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "InstitutionCodeSequence",
    ), INSTITUTION),
    **dict.fromkeys((
        "ReferringPhysicianName", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
        "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence",
        "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence",
        "RequestingPhysician", "OperatorsName", "OperatorIdentificationSequence",
        "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
        "ScheduledPerformingPhysicianName", "ConsultingPhysicianName", "ContentCreatorName",
        "VerifyingObserverName", "PersonName", "ReviewerName",
    ), STAFF),
    **dict.fromkeys((
        "AccessionNumber", "IssuerOfAccessionNumberSequence", "StudyID",
        "RequestedProcedureID", "PerformedProcedureStepID", "ScheduledProcedureStepID",
        "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
    ), ORDER),
    # Dates and times: with a hospital's schedule, one of them can single out an exam.
    **dict.fromkeys((
        "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "OverlayDate", "CurveDate",
        "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "OverlayTime", "CurveTime",
        "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
        "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime",
        "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime",
        "DateOfLastCalibration", "TimeOfLastCalibration",
        "DateOfSecondaryCapture", "TimeOfSecondaryCapture",
        "StudyVerifiedDate", "StudyReadDate", "StudyArrivalDate", "StudyCompletionDate",
        "AdmittingDate", "AdmittingTime", "DischargeDate", "LastMenstrualDate",
        "IssueDateOfImagingServiceRequest", "IssueTimeOfImagingServiceRequest",
        "FrameAcquisitionDateTime", "FrameReferenceDateTime",
        "StartAcquisitionDateTime", "EndAcquisitionDateTime",
        "RadiopharmaceuticalStartTime", "RadiopharmaceuticalStopTime",
        "RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStopDateTime",
        "InstanceCoercionDateTime", "ContributionDateTime", "Date", "Time", "DateTime",
    ), DATE),
    **dict.fromkeys((
        "StationName", "DeviceSerialNumber", "DetectorID", "GantryID", "PerformedStationName",
        "PerformedLocation", "ScheduledStationName", "ScheduledStudyLocation",
    ), DEVICE),
}
IDENTIFYING_TAGS: dict[BaseTag, tuple[str, str]] = {}
for _keyword, _reason in IDENTIFYING.items():
    _tag = tag_for_keyword(_keyword)
    if _tag is None:  # a typo here would silently stop checking an attribute
        raise RuntimeError(f"{_keyword} is not a DICOM keyword")
    IDENTIFYING_TAGS[Tag(_tag)] = (_keyword, _reason)

OVERRIDES_LOG = "release-overrides.log"
DEIDENTIFICATION_METHOD = "podium anonymize (PS3.15 E basic profile subset)"


@dataclass(frozen=True)
class Finding:
    """One identifying attribute: `file` is relative to the release, `tag` like "(0010,0010)",
    `keyword` a path through sequences ("RequestAttributesSequence[0].AccessionNumber")."""

    file: str
    tag: str
    keyword: str
    reason: str


@dataclass(frozen=True)
class Inspection:
    findings: tuple[Finding, ...]
    files: int
    dicom_files: int


@dataclass(frozen=True)
class AnonymizeReport:
    dicom_files: int
    copied_files: int
    attributes: int


def inspect_release(source: Path) -> list[Finding]:
    """Identifying attributes in every DICOM of a release folder, zip or single file."""
    return list(scan_release(source).findings)


def scan_release(source: Path) -> Inspection:
    """`inspect_release` with counts, so "clean" can be told from "no DICOM found"."""
    findings: list[Finding] = []
    files = dicoms = 0
    for relative, opener in _release_files(Path(source)):
        files += 1
        with opener() as stream:
            head = stream.read(132)
            preamble = _has_preamble(head)
            if not (preamble or relative.lower().endswith(".dcm")):
                continue
            dicoms += 1
            stream.seek(0)
            try:
                dataset = pydicom.dcmread(stream, stop_before_pixels=True, force=not preamble)
                _require_sop_class(dataset)
                offending = list(_offending(dataset))
            except Exception as exc:  # any unreadable file must be reported, whatever broke
                findings.append(Finding(relative, "", "", f"cannot be read as DICOM ({exc}); "
                                        "check it by hand or remove it"))
                continue
        findings.extend(Finding(relative, _tag_text(element.tag), path, reason)
                        for _, element, path, reason in offending)
    return Inspection(tuple(findings), files, dicoms)


def anonymize(in_path: Path, out_path: Path) -> AnonymizeReport:
    """Writes a cleaned copy of one DICOM file or a whole folder (other files copied as they
    are). Pixel data and geometry are untouched; identifying attributes are blanked, or removed
    when they are sequences or private."""
    in_path, out_path = Path(in_path).resolve(), Path(out_path).resolve()
    if not in_path.exists():
        raise ReleaseError(f"{in_path} not found")
    if out_path == in_path or out_path.is_relative_to(in_path) and in_path.is_dir():
        raise ReleaseError(f"write the cleaned copy outside {in_path}, not into it")
    if in_path.is_file():
        if out_path.is_dir():
            out_path = out_path / in_path.name
        if not _is_dicom_file(in_path):
            raise ReleaseError(f"{in_path} is not a DICOM file")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        return AnonymizeReport(1, 0, _anonymize_file(in_path, out_path))
    dicoms = copied = attributes = 0
    for path in sorted(p for p in in_path.rglob("*") if p.is_file()):
        target = out_path / path.relative_to(in_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if _is_dicom_file(path):
            attributes += _anonymize_file(path, target)
            dicoms += 1
        else:
            shutil.copy2(path, target)
            copied += 1
    return AnonymizeReport(dicoms, copied, attributes)


def record_override(data_dir: Path, event: Path, reason: str, counts: dict[str, int],
                    now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Path:
    """Appends who-knows-why to DATA_DIR/release-overrides.log: one JSON object a line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / OVERRIDES_LOG
    line = {
        "time": now().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "event": str(event),
        "reason": reason,
        "findings": sum(counts.values()),
        "challenges": counts,
    }
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return log


# --- walking datasets ---------------------------------------------------------------------


def _offending(dataset: Dataset, prefix: str = "") -> Iterator[tuple[Dataset, DataElement,
                                                                      str, str]]:
    """(holder, element, path, reason) for each non-empty identifying element, depth first.

    A flagged sequence is reported whole rather than item by item: anonymize removes it whole.
    """
    for element in list(dataset):
        tag = element.tag
        if tag.is_private:
            if not _is_empty(element):
                creator = _private_creator(dataset, tag)
                reason = PRIVATE + (f" (creator {creator!r})" if creator else "")
                yield dataset, element, prefix + _tag_text(tag), reason
            continue
        known = IDENTIFYING_TAGS.get(tag)
        if known is not None and element.VR != "UI":
            if not _is_empty(element):
                yield dataset, element, prefix + known[0], known[1]
            continue
        if element.VR == "SQ" and element.value:
            name = element.keyword or _tag_text(tag)
            for index, item in enumerate(element.value):
                yield from _offending(item, f"{prefix}{name}[{index}].")


def _is_empty(element: DataElement) -> bool:
    value = element.value
    if value is None:
        return True
    if element.VR == "SQ":
        return len(value) == 0
    if isinstance(value, bytes | bytearray):
        return not value.strip(b"\x00 ")
    if isinstance(value, MultiValue | list | tuple):
        return all(str(v).strip() == "" for v in value)
    return str(value).strip() == ""


def _private_creator(dataset: Dataset, tag: BaseTag) -> str | None:
    block = tag.element >> 8
    if block < 0x10:  # the creator elements themselves, and group length
        return None
    creator = dataset.get(Tag(tag.group, block))
    return None if creator is None else str(creator.value)


def _clean(dataset: Dataset) -> int:
    offending = list(_offending(dataset))
    for holder, element, _, _ in offending:
        if element.VR == "SQ" or element.tag.is_private:
            del holder[element.tag]
        else:
            element.value = None
    # Empty private elements are no finding, but a cleaned file should carry none at all.
    dataset.remove_private_tags()
    return len(offending)


def _anonymize_file(path: Path, target: Path) -> int:
    with path.open("rb") as stream:
        preamble = _has_preamble(stream.read(132))
    try:
        dataset = pydicom.dcmread(path, force=not preamble)
        _require_sop_class(dataset)
    except Exception as exc:  # pydicom raises many kinds on malformed files
        raise ReleaseError(f"{path} cannot be read as DICOM ({exc}); fix or remove it") from None
    cleaned = _clean(dataset)
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    # Written as it was read (same transfer syntax, pixel data bytes untouched).
    dataset.save_as(target)
    return cleaned


# --- files --------------------------------------------------------------------------------


def _require_sop_class(dataset: Dataset) -> None:
    # Forced reading turns any bytes into some dataset; a real DICOM object says what it is.
    meta = getattr(dataset, "file_meta", None)
    if "SOPClassUID" not in dataset and (meta is None or "MediaStorageSOPClassUID" not in meta):
        raise ValueError("no SOP Class UID")


def _has_preamble(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    with path.open("rb") as stream:
        return _has_preamble(stream.read(132))


def _release_files(source: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path.relative_to(source).as_posix(), _opener(path)
    elif source.suffix.lower() == ".zip":
        yield from _zip_files(source)
    elif source.is_file():
        yield source.name, _opener(source)
    else:
        raise ReleaseError(f"release {source} not found")


def _zip_files(source: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ReleaseError(f"release {source} is not a readable zip archive ({exc})") from None
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise ReleaseError(f"release {source} is encrypted; check the plain release")
            yield info.filename, _member_opener(archive, info)


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _member_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def summarize(findings: list[Finding] | tuple[Finding, ...]) -> dict[str, list[Finding]]:
    """Findings grouped by file, in the order found."""
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.file, []).append(finding)
    return grouped

