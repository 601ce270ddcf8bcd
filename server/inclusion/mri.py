"""MR series: is it a FLAIR, and how was it acquired (3-D, or 2-D in which plane)?

A FLAIR is an inversion recovery whose inversion time nulls the fluid's signal: 1.5–2.5 s
(2-D at 1.5 T around 2.2–2.5 s; 3-D SPACE / CUBE / VIEW around 1.6–1.9 s). A T1 inversion
recovery (MPRAGE, "T1 FLAIR") inverts at 0.7–1.1 s, a STIR at 0.1–0.25 s. So, in order:

1. A name that says STIR or DIR (double inversion recovery): not a FLAIR.
2. The inversion time, when the headers give one (InversionTime, or Enhanced MR's
   InversionTimes): ≥ `FLAIR_MIN_TI_MS` is a FLAIR, shorter is not.
3. The names the scanner and the technologist wrote: SeriesDescription, ProtocolName,
   SequenceName and the vendors' private pulse sequence names (GE (0019,109C), Philips
   (2001,1020)): "FLAIR", "dark fluid" (Siemens: "t2_tirm_tra_dark-fluid", "da-fl") is a
   FLAIR, unless the name also says T1 ("Sag T1 FLAIR" is a T1-weighted sequence).
4. ScanningSequence, ScanOptions and Enhanced MR's InversionRecovery: a sequence with no
   inversion recovery at all (SE, GR, EP without IR, and not magnetization-prepared:
   SequenceVariant without MP) is not a FLAIR.
5. Otherwise unknown (an inversion recovery without its time, or headers stripped of
   everything): a reviewer looks.

The acquisition is MRAcquisitionType (3D or 2D) and, for 2-D, the plane of the slices (the
normal of ImageOrientationPatient, `headers.plane_of`). Without MRAcquisitionType the series
could be either, and only what both readings allow is settled.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from server.inclusion.headers import SeriesSummary

FLAIR_MIN_TI_MS = 1400.0


@dataclass(frozen=True)
class SequenceReading:
    verdict: Literal["flair", "other", "unknown"]
    reason: str


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_B, _E = r"(?<![a-z0-9])", r"(?![a-z0-9])"
FLAIR_NAME = re.compile(r"flair|dark[\s_-]?fluid|" + _B + r"da[-_]?fl" + _E)
T1_NAME = re.compile(_B + r"(?:t1w?(?![a-z0-9])|t1(?=flair)|mprage)")
STIR_NAME = re.compile(_B + r"(?:stir|dir|double[\s_-]?ir|double[\s_-]?inversion)" + _E)


def _names(series: SeriesSummary) -> list[str]:
    return [n for n in (series.description, series.protocol, series.sequence_name,
                        series.vendor_sequence) if n]


def flair_reading(series: SeriesSummary) -> SequenceReading:
    names = _names(series)
    for name in names:
        if m := STIR_NAME.search(_plain(name)):
            return SequenceReading("other", f"{name!r} names a {m.group(0).upper()}, "
                                   "not a FLAIR")
    ti = series.inversion_time_ms
    if ti is not None and ti > 0:
        if ti >= FLAIR_MIN_TI_MS:
            return SequenceReading("flair", f"inversion time {ti:g} ms (a FLAIR nulls fluid "
                                   f"at {FLAIR_MIN_TI_MS:g} ms and more)")
        return SequenceReading("other", f"inversion time {ti:g} ms: a T1 inversion recovery "
                               f"or a STIR (a FLAIR inverts at {FLAIR_MIN_TI_MS:g} ms or more)")
    for name in names:
        plain = _plain(name)
        if FLAIR_NAME.search(plain):
            if T1_NAME.search(plain):
                return SequenceReading("other", f"{name!r} is a T1-weighted FLAIR")
            return SequenceReading("flair", f"the series is named {name!r}")
    techniques = {v.upper() for v in (*series.scanning_sequence, *series.scan_options)}
    if "IR" in techniques or series.inversion_recovery == "YES":
        return SequenceReading("unknown", "an inversion recovery without InversionTime or "
                               "a name: FLAIR or not cannot be told")
    # A magnetization-prepared sequence (SequenceVariant MP) may be prepared by an inversion
    # that ScanningSequence does not list: without its time, nothing is settled.
    if "MP" in (v.upper() for v in series.sequence_variant):
        return SequenceReading("unknown", "a magnetization-prepared sequence (SequenceVariant "
                               "MP) without InversionTime or a name: FLAIR or not cannot be "
                               "told")
    if series.inversion_recovery == "NO" or series.scanning_sequence:
        what = "\\".join(series.scanning_sequence) or "InversionRecovery NO"
        return SequenceReading("other", f"ScanningSequence {what}: no inversion recovery, "
                               "so not a FLAIR")
    return SequenceReading("unknown", "no ScanningSequence, InversionTime or sequence name")


def acquisitions(series: SeriesSummary) -> tuple[frozenset[str], str]:
    """What the series may be: {"3d"}, {"2d-axial"}, or both when MRAcquisitionType is
    absent; and why."""
    plane = series.stack.plane
    two_d = f"2d-{plane}" if plane else "2d"
    kind = series.mr_acquisition_type
    if kind == "3D":
        return frozenset({"3d"}), "MRAcquisitionType 3D"
    if kind == "2D":
        where = f", {plane} slices" if plane else ", plane unknown (no orientation)"
        return frozenset({two_d}), f"MRAcquisitionType 2D{where}"
    where = f"{plane} slices" if plane else "no orientation"
    return frozenset({"3d", two_d}), f"no MRAcquisitionType ({where})"


def allowed(acquisition: str, rule: frozenset[str]) -> bool:
    """Whether one reading ("3d", "2d-axial", "2d") is allowed by the criteria's list."""
    if acquisition in rule:
        return True
    return acquisition.startswith("2d") and "2d" in rule
