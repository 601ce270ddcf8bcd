"""CT reconstruction kernels: a vendor's kernel name to `soft` or `hard`, or `unknown`.

Each vendor names its kernels its own way, in ConvolutionKernel (0018,1210). The table below
is keyed on the vendor (read from Manufacturer) and the name; docs/inclusion.md ("Kernels")
gives the reasoning for each line. A soft kernel smooths (soft tissue, muscle, liver: what
the sarcopenia question wants); a hard (sharp) kernel keeps edges (lung, bone: what nodule
detection wants). Where a vendor's scheme does not say, the kernel is `unknown` and said so,
never guessed: a reviewer looks at the images, an organizer can name it in the criteria
(`kernels = {hard = ["FC43"]}`).

- Siemens writes a family, a sharpness number and a suffix: B30f, B70f, Br40d, Bl57d, I30f,
  Q40f, Hr60; newer scanners add the iterative strength as a second value (["Br40f", "3"]).
  The number is the vendor's sharpness scale (10 very smooth ... 80 ultra sharp, 50 "medium
  sharp"): below 50 is soft, 50 and above is hard.
- GE writes a word: SOFT, STANDARD, DETAIL (soft); CHST, LUNG, BONE, BONEPLUS, EDGE (hard).
- Philips writes a letter or two: A, B, UA–UC (soft); C, D, E, L, YA–YC, "Lung Enhanced" (hard).
- Canon (Toshiba) writes FCnn, FLnn or a word: FC01–FC29 (body and head, soft), FC30–FC39
  (bone), FC50–FC59 (lung), FC80–FC86 (bone, high resolution), FL01–FL09 (lung) hard; LUNG
  hard, BODY soft; the other FC numbers are unknown here.

Without a Manufacturer (a de-identified file may lack it), every vendor's table is tried: the
class is kept when those that know the name agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

KernelVerdict = Literal["soft", "hard", "unknown"]
Vendor = Literal["Siemens", "GE", "Philips", "Canon"]
VENDORS: tuple[Vendor, ...] = ("Siemens", "GE", "Philips", "Canon")


@dataclass(frozen=True)
class KernelReading:
    verdict: KernelVerdict
    name: str             # the kernel as the file writes it ("Br40f"), "" when absent
    vendor: Vendor | None
    reason: str           # why: "Siemens sharpness 40 (below 50 is soft)"


def vendor_of(manufacturer: str) -> Vendor | None:
    m = manufacturer.strip().casefold()
    if "siemens" in m:
        return "Siemens"
    if m in ("ge", "gems") or m.startswith(("ge ", "ge_", "gems")) or "general electric" in m:
        return "GE"
    if "philips" in m:
        return "Philips"
    if "toshiba" in m or "canon" in m:
        return "Canon"
    return None


SIEMENS_FAMILIES = frozenset({
    "B", "Bf", "Bl", "Br", "Bv", "C", "D", "H", "Hr", "I", "Q", "Qr", "S", "T", "U", "Ur",
})
_SIEMENS = re.compile(r"^([A-Z][a-z]?)(\d{2})([a-z]?)$")
SIEMENS_HARD_FROM = 50

GE: Mapping[str, KernelVerdict] = {
    "SOFT": "soft", "STANDARD": "soft", "DETAIL": "soft",
    "CHST": "hard", "CHEST": "hard", "LUNG": "hard", "BONE": "hard", "BONEPLUS": "hard",
    "EDGE": "hard",
}
PHILIPS: Mapping[str, KernelVerdict] = {
    "A": "soft", "B": "soft", "UA": "soft", "UB": "soft", "UC": "soft",
    "C": "hard", "D": "hard", "E": "hard", "L": "hard", "YA": "hard", "YB": "hard",
    "YC": "hard", "LUNGENHANCED": "hard",
}
CANON_WORDS: Mapping[str, KernelVerdict] = {"LUNG": "hard", "BODY": "soft"}
# FC numbers: (first, last, verdict, what the range is for)
CANON_FC: tuple[tuple[int, int, KernelVerdict, str], ...] = (
    (1, 29, "soft", "body and head"),
    (30, 39, "hard", "bone"),
    (50, 59, "hard", "lung"),
    (80, 86, "hard", "bone, high resolution"),
)
_CANON = re.compile(r"^(FC|FL)(\d{2})$")


def kernel_name(values: Sequence[str]) -> str:
    """The kernel among ConvolutionKernel's values: the first that is not a bare number
    (Siemens writes ["Br40f", "3"], the 3 being the iterative strength)."""
    for value in values:
        text = str(value).strip()
        if text and not text.replace(".", "", 1).isdigit():
            return text
    return ""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).upper()


def _siemens(name: str) -> tuple[KernelVerdict, str] | None:
    m = _SIEMENS.match(name)
    if not m or m.group(1) not in SIEMENS_FAMILIES:
        return None
    sharpness = int(m.group(2))
    verdict: KernelVerdict = "hard" if sharpness >= SIEMENS_HARD_FROM else "soft"
    side = "50 and above is hard" if verdict == "hard" else "below 50 is soft"
    return verdict, f"Siemens sharpness {sharpness} ({side})"


def _ge(name: str) -> tuple[KernelVerdict, str] | None:
    verdict = GE.get(_key(name))
    return (verdict, f"GE's {name.upper()} is a {verdict} kernel") if verdict else None


def _philips(name: str) -> tuple[KernelVerdict, str] | None:
    verdict = PHILIPS.get(_key(name))
    return (verdict, f"Philips filter {name} is {verdict}") if verdict else None


def _canon(name: str) -> tuple[KernelVerdict, str] | None:
    key = _key(name)
    if key in CANON_WORDS:
        verdict = CANON_WORDS[key]
        return verdict, f"Canon's {key} is a {verdict} kernel"
    m = _CANON.match(key)
    if not m:
        return None
    number = int(m.group(2))
    if m.group(1) == "FL":
        return ("hard", f"Canon {key} is a lung kernel") if 1 <= number <= 9 else None
    for first, last, verdict, what in CANON_FC:
        if first <= number <= last:
            return verdict, f"Canon FC{first:02d}–FC{last:02d} are {what} kernels ({verdict})"
    return None


_TABLES = {"Siemens": _siemens, "GE": _ge, "Philips": _philips, "Canon": _canon}


def classify_kernel(manufacturer: str, kernel: Sequence[str] | str,
                    extra: Mapping[str, Literal["soft", "hard"]] | None = None) -> KernelReading:
    """The class of a series' kernel. `extra`: names the question's criteria add
    (casefolded name -> class), which win over the table."""
    values = [kernel] if isinstance(kernel, str) else list(kernel)
    name = kernel_name(values)
    vendor = vendor_of(manufacturer)
    if not name:
        return KernelReading("unknown", "", vendor, "the headers carry no ConvolutionKernel")
    if extra and name.casefold() in extra:
        return KernelReading(extra[name.casefold()], name, vendor,
                             f"{name} is named {extra[name.casefold()]} by this question")
    if vendor is not None:
        found = _TABLES[vendor](name)
        if found is None:
            return KernelReading("unknown", name, vendor,
                                 f"{name} is not in Podium's table of {vendor} kernels")
        return KernelReading(found[0], name, vendor, found[1])
    readings = {v: r for v in VENDORS if (r := _TABLES[v](name)) is not None}
    verdicts = {r[0] for r in readings.values()}
    who = manufacturer.strip() or "no Manufacturer"
    if len(verdicts) == 1:
        verdict = verdicts.pop()
        reason = "; ".join(r[1] for r in readings.values())
        return KernelReading(verdict, name, None, f"{reason} (manufacturer: {who})")
    if not readings:
        return KernelReading("unknown", name, None,
                             f"{name} is in no vendor's table (manufacturer: {who})")
    return KernelReading("unknown", name, None,
                         f"{name} means different things to "
                         + " and ".join(readings) + f" (manufacturer: {who})")
