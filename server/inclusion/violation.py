"""What an inclusion check finds: a `Violation`, in the center's words.

A violation is a record (LORIS's MRI violations are the model), not a log line: its `code` is
stable (documented in docs/inclusion.md, "What a center sees"), its `rule` names the criteria
key it checks, `found` and `expected` are short phrases ("2.5 mm", "< 1.25 mm") that a review
screen can put in columns, and `message` is the sentence a center reads. `severity` says what
happens to the exam: `violation` excludes it unless an organizer accepts it, `warning` keeps
it and asks a reviewer to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    VIOLATION = "violation"
    WARNING = "warning"


@dataclass(frozen=True)
class Violation:
    code: str
    rule: str
    message: str
    severity: Severity
    found: str = ""
    expected: str = ""
    # Which series of the study it concerns ("series 3 'Thorax 1.0 B70f'"); None for the
    # study or its annotation.
    series: str | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"undocumented inclusion code {self.code!r}")

    @property
    def excludes(self) -> bool:
        return self.severity is Severity.VIOLATION

    def to_json(self) -> dict[str, str]:
        out = dict(code=self.code, rule=self.rule, message=self.message,
                   severity=str(self.severity), found=self.found, expected=self.expected)
        if self.series is not None:
            out["series"] = self.series
        return out


# Every code a check may report, with what it means (docs/inclusion.md lists the same; a test
# checks that both agree and that every code the checks use is here).
CODES: dict[str, str] = {
    "no_series": "the study holds no image series",
    "no_matching_series": "none of the study's series meets the criteria",
    "several_series": "more than one series meets the criteria",
    "localizer": "a localizer (scout) image, not a diagnostic series",
    "mixed_series": "the files of one series disagree (modality, kernel, size)",
    "modality": "the series' Modality is not the question's",
    "not_one_slice": "a 2-D question received several slices",
    "too_few_slices": "a volume has fewer slices than the question asks",
    "no_positions": "the slices carry no ImagePositionPatient, so the volume cannot be built",
    "mixed_orientations": "the slices are not all in one plane",
    "duplicate_slices": "two slices at the same position",
    "missing_slices": "a gap in the slice positions: slices are missing",
    "slice_thickness": "the slice thickness is outside the question's range",
    "slice_thickness_unknown": "neither SliceThickness nor the positions give a thickness",
    "no_pixel_spacing": "PixelSpacing is absent, so areas and volumes cannot be measured",
    "kernel": "the reconstruction kernel is not of the class the question asks",
    "kernel_unknown": "the kernel is absent or not in the vendor table",
    "contrast": "contrast injected where forbidden, or absent where required",
    "contrast_unknown": "the headers do not say whether contrast was injected",
    "sequence": "the MR sequence is not the one the question asks (FLAIR)",
    "sequence_unknown": "the headers do not say which MR sequence this is",
    "acquisition": "the MR acquisition (3-D, 2-D and its plane) is not allowed",
    "acquisition_unknown": "MRAcquisitionType is absent and the plane does not settle it",
    "mask_missing": "the annotation has no mask",
    "mask_shape": "the mask's shape is not the exam's",
    "mask_not_binary": "the mask holds more than two values",
    "mask_empty": "the mask has no foreground",
    "nodule_count": "the number of nodules is outside the question's range",
    "nodule_outside": "a nodule position lies outside the volume",
    "nodule_density": "a nodule's density is not one of the allowed ones",
    "nodule_size_missing": "a nodule has neither volume nor diameter, so it cannot be classed",
    "label_disagrees": "the exam's label disagrees with its nodules' sizes",
    "clinical_missing": "a required clinical field is empty or absent",
    "clinical_value": "a clinical value is not of the field's type or not allowed",
    "clinical_range": "a clinical value is outside its range",
    "clinical_unknown_field": "the clinical row holds a field the question does not declare",
}
