"""Replacement values: the dummies of D, the shifted dates, the cleaned text of C, and the
dummies other anonymizers write that `podium check-release` accepts as already clean."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from server.deid.secret import PSEUDONYM_HEX, PSEUDONYM_PREFIX

DUMMY_TEXT = "ANONYMIZED"
# D's value for each VR: non-zero length, valid for the VR, meaning nothing.
DUMMIES: dict[str, Any] = {
    **dict.fromkeys(("AE", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT"), DUMMY_TEXT),
    "PN": DUMMY_TEXT,
    "AS": "000D",
    "DA": "00010101",
    "DT": "00010101000000",
    "TM": "000000",
    **dict.fromkeys(("DS", "IS"), "0"),
    **dict.fromkeys(("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"), 0),
    "AT": 0,
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), b"\x00\x00"),
}

# Words other de-identifiers write in place of a value (case and spaces ignored).
ACCEPTED_WORDS = frozenset({"ANONYMIZED", "ANONYMISED", "ANONYMOUS", "ANON", "REMOVED",
                            "DEIDENTIFIED", "DE-IDENTIFIED", "REDACTED", "UNKNOWN",
                            "PATIENT"})
_ZERO_DATE = re.compile(r"0001-?01-?01|19000101")
_ZERO_TIME = re.compile(r"0{2}:?0{2}:?0{2}(\.0*)?|0{2}0{0,4}(\.0*)?")
# A date-time on a dummy day is a dummy whatever its time (one writes 00010101010101).
_ZERO_DATETIME = re.compile(r"(00010101|19000101)[\d.]*([+-]\d{4})?")
_DUMMY_URL = re.compile(r"(https?://)?[\w.-]*\.invalid/?", re.IGNORECASE)
_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + f"[0-9A-F]{{{PSEUDONYM_HEX}}}")


def dummy(vr: str) -> Any:
    """The value D writes for an element of this VR (UIDs and sequences are the engine's)."""
    try:
        return DUMMIES[vr]
    except KeyError:
        raise ValueError(f"no dummy for VR {vr}") from None


def is_blank(value: Any) -> bool:
    """An absent, zero-length or all-spaces value, single or multi-valued."""
    if value is None:
        return True
    if isinstance(value, Sequence):
        return all(len(item) == 0 for item in value)
    if isinstance(value, bytes | bytearray):
        return not value.strip(b"\x00 ")
    if isinstance(value, MultiValue | list | tuple):
        return all(is_blank(v) for v in value)
    return str(value).strip() == ""


def is_accepted_dummy(value: Any, vr: str, pseudonym_allowed: bool = False) -> bool:
    """A value the profile's action would change, but that already says nothing: blank, a
    word anonymizers write (`ANONYMIZED`, `ANONYMOUS`, …), a zero date, time or number, all
    zero bytes, one of D's dummies, or (for PatientID and PatientName) Podium's pseudonym."""
    if is_blank(value):
        return True
    if isinstance(value, Sequence):
        return False
    if isinstance(value, bytes | bytearray):
        words = value.strip(b"\x00 ").decode("ascii", "replace").upper()
        return not words or words in ACCEPTED_WORDS
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return all(_accepted_single(v, vr, pseudonym_allowed) for v in values)


def _accepted_single(value: Any, vr: str, pseudonym_allowed: bool) -> bool:
    if isinstance(value, int | float):
        return value == 0
    text = str(value).strip()
    if text == "" or text.replace("^", "").strip() == "":
        return True
    if pseudonym_allowed and _PSEUDONYM.fullmatch(text.rstrip("^")):
        return True
    if vr == "DA":
        return _ZERO_DATE.fullmatch(text) is not None
    if vr == "TM":
        return _ZERO_TIME.fullmatch(text) is not None
    if vr == "DT":
        return _ZERO_DATETIME.fullmatch(text) is not None
    if vr in ("DS", "IS"):
        try:
            return float(text) == 0
        except ValueError:
            return False
    if vr == "UR":
        return _DUMMY_URL.fullmatch(text) is not None or text.upper() in ACCEPTED_WORDS
    if vr == "AS":
        return text in ("000D", "000W", "000M", "000Y")
    words = {part.strip().upper() for part in text.replace("^", " ").split() if part.strip()}
    return bool(words) and words <= ACCEPTED_WORDS


# --- dates -----------------------------------------------------------------------------------

def shift_date(value: str, days: int) -> str | None:
    """A DA value moved by `days`; None when it is not a date that can be moved."""
    text = value.strip()
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    if match is None:
        return None
    try:
        moved = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def shift_datetime(value: str, days: int) -> str | None:
    """A DT value whose date part is moved by `days`; the time and UTC offset are kept (a
    whole-day shift does not change them). A DT of a year or a month alone is not movable."""
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    moved = shift_date(text[:8], days)
    return None if moved is None else moved + text[8:]


# --- text ------------------------------------------------------------------------------------

# Shapes that identify whatever file they are in: dates, long numbers (record numbers,
# telephone numbers), e-mail addresses.
_IDENTIFYING_SHAPES = re.compile(
    r"\b(?:19|20)\d{2}[-/.]?(?:0[1-9]|1[0-2])[-/.]?(?:0[1-9]|[12]\d|3[01])\b"
    r"|\b(?:0[1-9]|[12]\d|3[01])[-/.](?:0[1-9]|1[0-2])[-/.](?:19|20)?\d{2}\b"
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
    r"|(?<![\w.])\+?\d[\d .-]{4,}\d(?![\w.])")
_MIN_TERM = 3  # shorter terms ("DR", "J") would eat ordinary words


def identifying_terms(values: Iterable[Any]) -> frozenset[str]:
    """The words to clean out of free text: each identifying value of the file (names split
    into their components), upper-cased, at least three characters long."""
    terms: set[str] = set()
    for value in values:
        items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        for item in items:
            if isinstance(item, bytes | bytearray | Dataset | int | float):
                continue
            text = str(item).strip()
            if isinstance(item, PersonName) or "^" in text:
                parts = re.split(r"[\^=]", text)
            else:
                parts = [text]
            for part in parts:
                part = part.strip().upper()
                if len(part) >= _MIN_TERM:
                    terms.add(part)
    return frozenset(terms)


def clean_text(text: str, terms: frozenset[str]) -> str:
    """C on free text: the file's identifying terms and identifying shapes (dates, long
    numbers, e-mail addresses) removed, whatever else it says kept."""
    cleaned = text
    for term in sorted(terms, key=len, reverse=True):
        cleaned = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", "", cleaned, flags=re.IGNORECASE)
    cleaned = _IDENTIFYING_SHAPES.sub("", cleaned)
    if cleaned == text:
        return text
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip()
