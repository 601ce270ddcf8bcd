"""Which of the profile's options apply, and the one action each attribute gets under them.

`Policy` names the Basic Profile plus the options Podium implements: the dates option (remove
them as the Basic Profile does, shift them by a per-patient offset — Retain Longitudinal
Temporal Information with Modified Dates — or keep them — ... with Full Dates), Retain Patient
Characteristics and Clean Descriptors. `resolve` turns a row of Table E.1-1 into one letter.

Compound codes need the attribute's Type in the IOD, which a de-identifier that does not
validate IODs does not know. The standard writes them from the Type 3 letter to the Type 1
letter (X/Z: "X unless Z is required ... (Type 3 versus Type 2)"), so the last letter is the
one valid whatever the Type: X/Z → Z, X/D → D, X/Z/D → D, Z/D → D, and X/Z/U* → U* (the
sequence is kept, the UIDs it holds are replaced and the table is applied inside it). Neither
a Z (empty) nor a D (a dummy) carries identifying information, so this costs no privacy over
X; it only leaves some Type 3 attributes present and empty or dummy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from server.deid.table import Attribute


class Dates(StrEnum):
    REMOVE = "remove"  # the Basic Profile's actions
    SHIFT = "shift"    # Retain Longitudinal Temporal Information, Modified Dates Option
    KEEP = "keep"      # Retain Longitudinal Temporal Information, Full Dates Option


# CID 7050 "De-identification Method": code value → code meaning (scheme DCM).
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")
FULL_DATES = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")

# A C from an option beats a K from another one: it is the more protective of the two.
_STRENGTH = {"K": 0, "C": 1}


@dataclass(frozen=True)
class Policy:
    """The profile as one challenge applies it. The default is the Basic Profile alone."""

    dates: Dates = Dates.REMOVE
    patient_characteristics: bool = False
    clean_descriptors: bool = False
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        chosen = []
        if self.patient_characteristics:
            chosen.append("pat")
        if self.dates is Dates.SHIFT:
            chosen.append("modif")
        elif self.dates is Dates.KEEP:
            chosen.append("full")
        if self.clean_descriptors:
            chosen.append("desc")
        object.__setattr__(self, "columns", tuple(chosen))

    def method_codes(self) -> list[tuple[str, str]]:
        """The codes of De-identification Method Code Sequence, Basic Profile first."""
        codes = [BASIC_PROFILE]
        if self.clean_descriptors:
            codes.append(CLEAN_DESCRIPTORS)
        if self.dates is Dates.KEEP:
            codes.append(FULL_DATES)
        elif self.dates is Dates.SHIFT:
            codes.append(MODIFIED_DATES)
        if self.patient_characteristics:
            codes.append(PATIENT_CHARACTERISTICS)
        return codes

    def method_text(self) -> str:
        """De-identification Method (LO, at most 64 characters)."""
        names = {CLEAN_DESCRIPTORS: "clean desc", FULL_DATES: "full dates",
                 MODIFIED_DATES: "shifted dates", PATIENT_CHARACTERISTICS: "pat chars"}
        extra = [names[code] for code in self.method_codes()[1:]]
        return "Podium PS3.15 E basic" + (f" + {', '.join(extra)}" if extra else "")


def resolve(attribute: Attribute, policy: Policy) -> str:
    """The single action code (D, Z, X, K, C, U or U*) of `attribute` under `policy`."""
    code = attribute.basic
    overrides = [attribute.options[c] for c in policy.columns if c in attribute.options]
    if overrides:
        code = max(overrides, key=lambda c: _STRENGTH.get(c, 2))
    if code == "X/Z/U*":
        return "U*"
    return code.rsplit("/", 1)[-1]


# The policy `podium check-release` checks releases against and `podium anonymize` applies:
# validation sets keep patient characteristics and cleaned descriptions (challenges often
# release them on purpose), dates are the Basic Profile's.
RELEASE = Policy(patient_characteristics=True, clean_descriptors=True)
