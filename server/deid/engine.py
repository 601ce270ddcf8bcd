"""Applying the profile: `deidentify(dataset, policy, keys)` and `deidentify_file`.

Every element is visited, in sequences at any depth, and gets the action its row of Table
E.1-1 has under the policy (server/deid/policy.py). Elements the table does not name:

- private elements (odd groups) and the whole of groups 50xx (curves) and 60xx (overlays)
  are removed, as the table's last rows say;
- a date, time or date-time the table does not name is treated like the table's dates
  (basic X; kept, shifted or removed with the dates option), as PS3.15 E.1.1 note 4 advises;
- anything else is kept, and a sequence kept is walked with the same rules.

Patient identity: PatientID and PatientName become the HMAC pseudonym of the original
PatientID; dates move by the patient's offset under the shift option; UIDs become 2.25 UIDs
derived from the originals (server/deid/secret.py). A file whose pixels may hold text that
no header action can remove is rejected instead (`Rejection`), and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from server.deid.policy import MODIFIED_DATES, Dates, Policy, resolve
from server.deid.secret import Keys
from server.deid.table import ATTRIBUTES, Attribute
from server.deid.values import (
    clean_text,
    dummy,
    identifying_terms,
    is_accepted_dummy,
    is_blank,
    shift_date,
    shift_datetime,
)

PATIENT_ID = Tag(0x0010, 0x0020)
PATIENT_NAME = Tag(0x0010, 0x0010)
TIMEZONE_OFFSET = Tag(0x0008, 0x0201)
PIXEL_GROUP = 0x7FE0
DICOM_UID_ROOT = "1.2.840.10008."  # the standard's own UIDs (SOP classes, ...): never replaced
DATE_VRS = ("DA", "DT", "TM")
TEXT_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT")
# Values larger than this stay on disk until the copy is written (pixel data above all).
DEFER_BYTES = 256 * 1024
# Podium as the de-identifying application, in the copy's File Meta Information.
IMPLEMENTATION_UID = "2.25.186547802466375187376283463838532410945"
IMPLEMENTATION_VERSION = "PODIUM_DEID_1"

# Modalities whose pixels often carry names, dates or report text (screenshots of a
# console, scanned documents, photographs, ultrasound screens, slides with their labels).
TEXT_IN_PIXELS_MODALITIES = frozenset({"OT", "SC", "DOC", "US", "XC", "ES", "GM", "SM", "SR"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
STRUCTURED_REPORT_PREFIX = "1.2.840.10008.5.1.4.1.1.88."

_DATE_ROW = {"full": "K", "modif": "C"}


@dataclass(frozen=True)
class Rejection:
    """Why a file is refused rather than de-identified; `tag` the element that says so."""

    code: str
    message: str
    tag: BaseTag | None = None


@dataclass(frozen=True)
class Change:
    """One element the profile changed: `action` is the letter applied (or "private",
    "overlay", "pseudonym"); `identifying` when its value was not blank or a dummy already."""

    path: str
    tag: BaseTag
    action: str
    identifying: bool


@dataclass(frozen=True)
class Result:
    rejection: Rejection | None
    changes: tuple[Change, ...] = ()
    pseudonym: str | None = None
    date_offset_days: int | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


# --- the rule for one element ----------------------------------------------------------------


def attribute_for(tag: BaseTag, vr: str | None) -> Attribute | None:
    """The table's row for `tag`, or the dates row it is given by its VR, or None."""
    known = ATTRIBUTES.get(tag)
    if known is not None:
        return known
    if vr in DATE_VRS:
        return Attribute("", tag, vr, False, False, "X", MappingProxyType(_DATE_ROW))
    return None


def is_removed_group(tag: BaseTag) -> bool:
    """Private elements, curves (50xx) and overlays (60xx): removed whole."""
    return tag.is_private or (tag.group & 0xFF00) in (0x5000, 0x6000)


def action_for(tag: BaseTag, vr: str | None, policy: Policy) -> str:
    """D, Z, X, K, C, U or U* for an element of a public group ("K" when the table and the
    dates rule say nothing)."""
    attribute = attribute_for(tag, vr)
    return "K" if attribute is None else resolve(attribute, policy)


def rejection(dataset: Dataset) -> Rejection | None:
    """A file whose pixels may carry identifying text: burned-in annotation declared,
    a secondary capture, an encapsulated document or structured report, or a modality of
    `TEXT_IN_PIXELS_MODALITIES`."""
    burned = str(dataset.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return Rejection("burned_in_annotation", "BurnedInAnnotation is YES: the pixels carry "
                         "text that header de-identification cannot remove",
                         Tag(0x0028, 0x0301))
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    meta = getattr(dataset, "file_meta", None)
    if not sop_class and meta is not None:
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
    sop_tag = Tag(0x0008, 0x0016)
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        return Rejection("secondary_capture", f"a secondary capture ({UID(sop_class).name}): "
                         "screenshots carry text in their pixels", sop_tag)
    if sop_class.startswith(ENCAPSULATED_DOCUMENT_PREFIX):
        return Rejection("encapsulated_document", f"an encapsulated document "
                         f"({UID(sop_class).name}), not an image", sop_tag)
    if sop_class.startswith(STRUCTURED_REPORT_PREFIX):
        return Rejection("structured_report", f"a structured report ({UID(sop_class).name}): "
                         "its free text is not cleaned", sop_tag)
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    if modality in TEXT_IN_PIXELS_MODALITIES:
        return Rejection("text_in_pixels", f"modality {modality}: such images often carry "
                         "names or dates in their pixels", Tag(0x0008, 0x0060))
    return None


# --- walking -----------------------------------------------------------------------------------


@dataclass
class Context:
    """What one file's walk needs: the policy, the patient's identity, the file's terms."""

    policy: Policy
    terms: frozenset[str] = frozenset()
    offset_days: int | None = None
    uid: Callable[[str], str] | None = None
    changes: list[Change] = field(default_factory=list)


def elements(dataset: Dataset, policy: Policy
             ) -> Iterator[tuple[BaseTag, str | None, DataElement | None]]:
    """(tag, action, element) of each element. The element is None, and its value never
    decoded, for pixel data and the groups removed whole (action None: never worth loading)
    and for an element the policy keeps as it is (action K, not a sequence): the copy then
    writes its bytes as the file had them, and a file's many kept elements cost nothing."""
    for tag in list(dataset.keys()):
        tag = Tag(tag)
        if tag.group == PIXEL_GROUP or is_removed_group(tag):
            yield tag, None, None
            continue
        vr = _vr_unread(dataset, tag)
        if vr is not None and vr != "SQ" and action_for(tag, vr, policy) == "K" and \
                tag not in (PATIENT_ID, PATIENT_NAME):  # the pseudonym's: always looked at
            yield tag, "K", None
            continue
        element = dataset[tag]
        yield tag, action_for(tag, element.VR, policy), element


def _vr_unread(dataset: Dataset, tag: BaseTag) -> str | None:
    """An element's VR as its value would be decoded with, without decoding it: the file's
    own (explicit VR), else the dictionary's (implicit VR); None when only decoding tells (an
    unknown tag, or UN, which pydicom replaces by the dictionary's VR)."""
    raw = dataset.get_item(tag, keep_deferred=True)
    if raw is None:
        return None
    if not isinstance(raw, RawDataElement):
        return str(raw.VR)
    if raw.VR is not None:
        return None if raw.VR == "UN" else str(raw.VR)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def blank_unread(dataset: Dataset, tag: BaseTag) -> bool:
    """Whether an element is blank, judged without loading a value left on disk (a value
    large enough to be deferred is not blank)."""
    raw = dataset.get_item(tag, keep_deferred=True)
    if raw is None:
        return True
    if isinstance(raw, RawDataElement):
        if raw.value is None:
            return raw.length == 0
        return not raw.value.strip(b"\x00 ")
    return is_blank(raw.value)


def would_change(element: DataElement, action: str, ctx: Context, top: bool) -> bool:
    """Whether applying `action` would change an identifying value (what check-release
    flags): never for K, U and U*, nor for a value already blank or a dummy; for C, when
    cleaning changes the text or the date."""
    value = element.value
    if action in ("K", "U", "U*") or element.VR == "UI":
        return False
    if element.VR == "SQ":
        return action in ("X", "Z", "D") and not is_blank(value)
    if top and element.tag in (PATIENT_ID, PATIENT_NAME):
        return not is_accepted_dummy(value, element.VR, pseudonym_allowed=True)
    if is_accepted_dummy(value, element.VR):
        return False
    if action == "C":
        if element.VR in ("DA", "DT"):
            return True  # a real date would be moved
        if element.VR == "TM" or element.tag == TIMEZONE_OFFSET:
            return False  # a whole-day shift leaves times and UTC offsets as they are
        if element.VR in TEXT_VRS:
            return _cleaned(value, ctx) != value
    return True  # binary timestamps included: they get the Basic Profile's action


def _cleaned(value: Any, ctx: Context) -> Any:
    if isinstance(value, MultiValue | list | tuple):
        return [clean_text(str(v), ctx.terms) for v in value]
    if isinstance(value, str) or hasattr(value, "original_string"):
        return clean_text(str(value), ctx.terms)
    return value


def _shifted(element: DataElement, ctx: Context) -> Any:
    days = ctx.offset_days or 0
    shift = shift_date if element.VR == "DA" else shift_datetime
    values = list(element.value) if isinstance(element.value, MultiValue) else [element.value]
    moved = [None if is_blank(v) else shift(str(v), days) for v in values]
    if any(m is None and not is_blank(v) for m, v in zip(moved, values, strict=True)):
        return None  # not a date that can be moved: the caller writes the dummy
    texts = ["" if m is None else m for m in moved]
    return texts if len(texts) > 1 else texts[0]


def _apply(dataset: Dataset, ctx: Context, prefix: str, top: bool) -> None:
    for tag, action, element in elements(dataset, ctx.policy):
        if action == "K" and element is None:
            continue  # kept as it is, never decoded
        path = prefix + (element.keyword if element is not None and element.keyword
                         else f"({tag.group:04X},{tag.element:04X})")
        if element is None:
            if tag.group == PIXEL_GROUP:
                continue
            ctx.changes.append(Change(path, tag, "private" if tag.is_private else "overlay",
                                      not blank_unread(dataset, tag)))
            del dataset[tag]
            continue
        if top and tag in (PATIENT_ID, PATIENT_NAME):
            continue  # written by `deidentify` from the pseudonym
        assert action is not None
        if element.VR == "SQ":
            _apply_sequence(dataset, element, action, ctx, path)
            continue
        identifying = would_change(element, action, ctx, top)
        before = element.value
        if action == "K":
            continue
        if action == "X":
            del dataset[tag]
        elif action == "Z":
            element.value = None
        elif action in ("U", "U*") or element.VR == "UI":
            element.value = _replace_uids(element.value, ctx)
        elif action == "D":
            element.value = dummy(element.VR)
        elif action == "C":
            _clean(element, ctx)
        if tag in dataset and dataset[tag].value == before:
            continue
        ctx.changes.append(Change(path, tag, action, identifying))


def _apply_sequence(dataset: Dataset, element: DataElement, action: str, ctx: Context,
                    path: str) -> None:
    identifying = would_change(element, action, ctx, top=False)
    if action == "X":
        del dataset[element.tag]
    elif action == "Z":
        if not element.value:
            return
        element.value = Sequence()
    elif action == "D":
        if len(element.value) == 1 and len(element.value[0]) == 0:
            return
        element.value = Sequence([Dataset()])
    else:  # K, C, U*: the items are walked with the same rules
        for index, item in enumerate(element.value):
            _apply(item, ctx, f"{path}[{index}].", top=False)
        return
    ctx.changes.append(Change(path, element.tag, action, identifying))


def _replace_uids(value: Any, ctx: Context) -> Any:
    assert ctx.uid is not None
    if is_blank(value):
        return value
    uid = ctx.uid
    values = list(value) if isinstance(value, MultiValue) else [value]
    replaced = [v if str(v).startswith(DICOM_UID_ROOT) or is_blank(v) else uid(str(v))
                for v in values]
    return replaced if len(replaced) > 1 else replaced[0]


def _clean(element: DataElement, ctx: Context) -> None:
    if element.VR in ("DA", "DT"):
        if ctx.policy.dates is Dates.SHIFT:
            moved = _shifted(element, ctx)
            element.value = dummy(element.VR) if moved is None else moved
        # Under another dates option a C on a date comes from no option Podium offers.
        return
    if element.VR == "TM" or element.tag == TIMEZONE_OFFSET:
        return
    if element.VR in TEXT_VRS:
        element.value = _cleaned(element.value, ctx)
        return
    # Binary timestamps (CertifiedTimestamp, FrameOriginTimestamp) cannot be shifted: the
    # Basic Profile's action applies instead.
    attribute = attribute_for(element.tag, element.VR)
    if attribute is not None and resolve(attribute, Policy()) == "D":
        element.value = dummy(element.VR)
    else:
        element.value = None


def collect_terms(dataset: Dataset, policy: Policy) -> frozenset[str]:
    """The identifying words of a file, for cleaning its free text: the values of every
    text element the profile removes or replaces (names, IDs, institutions, places)."""
    found: list[Any] = []

    def visit(ds: Dataset) -> None:
        for _tag, action, element in elements(ds, policy):
            if element is None:
                continue
            if element.VR == "SQ":
                for item in element.value:
                    visit(item)
                continue
            if element.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE") and \
                    action in ("D", "Z", "X"):
                found.append(element.value)

    visit(dataset)
    return identifying_terms(found)


# --- a whole dataset, a whole file -------------------------------------------------------------


def deidentify(dataset: Dataset, policy: Policy, keys: Keys) -> Result:
    """De-identifies `dataset` in place (its file meta too) unless it must be rejected, in
    which case it is left as it was. Pixel data is never read nor changed."""
    refused = rejection(dataset)
    if refused is not None:
        return Result(refused)
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    study_uid = str(dataset.get("StudyInstanceUID", "") or "").strip()
    patient_key = patient_id or study_uid
    ctx = Context(policy, collect_terms(dataset, policy),
                  keys.date_offset_days(patient_key) if policy.dates is Dates.SHIFT else None,
                  keys.uid)
    if patient_id:
        ctx.terms = ctx.terms | {patient_id.upper()}
    pseudonym = keys.pseudonym(patient_id) if patient_id else None
    _apply(dataset, ctx, "", top=True)
    _write_patient(dataset, pseudonym, ctx)
    _write_method(dataset, policy)
    if hasattr(dataset, "file_meta"):
        _rebuild_meta(dataset, ctx)
    return Result(None, tuple(ctx.changes), pseudonym, ctx.offset_days)


def _write_patient(dataset: Dataset, pseudonym: str | None, ctx: Context) -> None:
    # Without a PatientID there is no patient to key: both get the profile's action (Z).
    for tag, keyword in ((PATIENT_ID, "PatientID"), (PATIENT_NAME, "PatientName")):
        element = dataset.get(tag)
        if element is None and pseudonym is None:
            continue
        identifying = element is not None and would_change(element, "Z", ctx, top=True)
        new = pseudonym or ""
        if element is not None and str(element.value or "") == new:
            continue
        setattr(dataset, keyword, new)
        ctx.changes.append(Change(keyword, tag, "pseudonym" if pseudonym else "Z", identifying))


def _write_method(dataset: Dataset, policy: Policy) -> None:
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = policy.method_text()
    codes = Sequence()
    for value, meaning in policy.method_codes():
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    dataset.DeidentificationMethodCodeSequence = codes
    dataset.LongitudinalTemporalInformationModified = {
        Dates.REMOVE: "REMOVED", Dates.SHIFT: "MODIFIED", Dates.KEEP: "UNMODIFIED"}[policy.dates]


def _rebuild_meta(dataset: Dataset, ctx: Context) -> None:
    """PS3.15 E.1.1 item 7: the File Meta Information describes the de-identifier, and
    keeps only what reading the file needs."""
    old = dataset.file_meta
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID") or old.get(
        "MediaStorageSOPClassUID")
    instance = dataset.get("SOPInstanceUID")
    if instance is None and old.get("MediaStorageSOPInstanceUID"):
        instance = _replace_uids(old.MediaStorageSOPInstanceUID, ctx)
    meta.MediaStorageSOPInstanceUID = instance
    syntax = old.get("TransferSyntaxUID")
    if syntax is None:
        syntax = _syntax_read(dataset)
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    dataset.file_meta = meta
    dataset.preamble = b"\x00" * 128


def _syntax_read(dataset: Dataset) -> UID:
    implicit, little = dataset.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def declares_shifted_dates(dataset: Dataset) -> bool:
    """A file whose De-identification Method Code Sequence says its dates were shifted."""
    for item in dataset.get("DeidentificationMethodCodeSequence", None) or []:
        if str(item.get("CodeValue", "")) == MODIFIED_DATES[0]:
            return True
    return False


def deidentify_file(source: Path, target: Path, policy: Policy, keys: Keys) -> Result:
    """One file in, one file out: the header read and cleaned, the pixel data copied from
    the source as it is written (never held with other files'), the copy renamed into place
    whole. A rejected or unreadable file writes nothing."""
    try:
        dataset = read_dicom(source)
    except NotDicomError as exc:
        return Result(Rejection("not_dicom", str(exc)))
    result = deidentify(dataset, policy, keys)
    if not result.accepted:
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        dataset.save_as(partial, enforce_file_format=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return result


class NotDicomError(Exception):
    """A file that is not a DICOM object."""


def read_dicom(source: Path) -> Dataset:
    """A DICOM file's dataset with its large values left on disk; NotDicomError otherwise."""
    with source.open("rb") as stream:
        head = stream.read(132)
    preamble = len(head) == 132 and head[128:] == b"DICM"
    try:
        dataset = pydicom.dcmread(source, defer_size=DEFER_BYTES, force=not preamble)
    except Exception as exc:  # pydicom raises many kinds on what is not DICOM
        raise NotDicomError(f"{source.name} cannot be read as DICOM ({exc})") from None
    meta = getattr(dataset, "file_meta", None)
    if "SOPClassUID" not in dataset and (meta is None or "MediaStorageSOPClassUID" not in meta):
        raise NotDicomError(f"{source.name} is not a DICOM object (no SOP Class UID)")
    return dataset
