"""The GDPR guard: identifying DICOM attributes in a release, found and removed.

Both halves apply the one PS3.15 Annex E table of server/deid/ (docs/deidentification.md):
`scan_release` flags what de-identifying a file would change (server/deid/audit.py) and
`anonymize` de-identifies (server/deid/engine.py), both under `RELEASE`, the policy of
validation sets: the Basic Profile with Retain Patient Characteristics and Clean Descriptors.
UIDs are replaced by `anonymize` but never flagged: a replaced UID looks like an original one.
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
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from server.deid.audit import PRIVATE, audit
from server.deid.engine import deidentify_file
from server.deid.policy import RELEASE
from server.deid.secret import Keys
from server.errors import ReleaseError

__all__ = ["PRIVATE", "AnonymizeReport", "Finding", "Inspection", "anonymize",
           "inspect_release", "record_override", "scan_release", "summarize"]

OVERRIDES_LOG = "release-overrides.log"


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
                flags = list(audit(dataset, RELEASE))
            except Exception as exc:  # any unreadable file must be reported, whatever broke
                findings.append(Finding(relative, "", "", f"cannot be read as DICOM ({exc}); "
                                        "check it by hand or remove it"))
                continue
        findings.extend(Finding(relative, _tag_text(flag.tag), flag.path, flag.reason)
                        for flag in flags)
    return Inspection(tuple(findings), files, dicoms)


def anonymize(in_path: Path, out_path: Path, keys: Keys) -> AnonymizeReport:
    """Writes a de-identified copy of one DICOM file or a whole folder (other files copied as
    they are), by the `RELEASE` policy under the event's `keys`. Pixel data is untouched.
    `attributes` counts the identifying values changed: what check-release flagged."""
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
        return AnonymizeReport(1, 0, _anonymize_file(in_path, out_path, keys))
    dicoms = copied = attributes = 0
    for path in sorted(p for p in in_path.rglob("*") if p.is_file()):
        target = out_path / path.relative_to(in_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if _is_dicom_file(path):
            attributes += _anonymize_file(path, target, keys)
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


def _anonymize_file(path: Path, target: Path, keys: Keys) -> int:
    result = deidentify_file(path, target, RELEASE, keys)
    if result.rejection is not None:
        if result.rejection.code == "not_dicom":
            raise ReleaseError(f"{path} cannot be read as DICOM ({result.rejection.message}); "
                               "fix or remove it")
        raise ReleaseError(f"{path} cannot be de-identified: {result.rejection.message}; "
                           "leave it out of the release")
    return sum(change.identifying for change in result.changes)


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

