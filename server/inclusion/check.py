"""A study's headers against its question's criteria: what a center is told at once.

`check_series(criteria, series)` lists a series' violations, rule by rule, in the order a
center would fix them (the wrong modality first, the wrong kernel last).
`check_study(criteria, series)` decides for the study: a study often holds more than the
series the question needs (a localizer, a soft and a sharp reconstruction of one
acquisition), so the study is accepted when one of its series is; when several are, the one
with the fewest warnings is taken and the center is told; when none is, the center sees why
the closest one fails. Every rule and message is listed in docs/inclusion.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.inclusion.contrast import contrast_evidence
from server.inclusion.criteria import Criteria
from server.inclusion.headers import SeriesSummary
from server.inclusion.kernels import classify_kernel
from server.inclusion.mri import acquisitions, allowed, flair_reading
from server.inclusion.violation import Severity, Violation

V, W = Severity.VIOLATION, Severity.WARNING


def _mm(x: float) -> str:
    return f"{x:.3g} mm" if abs(x) < 100 else f"{x:.0f} mm"


def _mixed(series: SeriesSummary) -> list[Violation]:
    mixed = []
    if len(series.series_uids) > 1:
        mixed.append(f"{len(series.series_uids)} SeriesInstanceUIDs")
    if len(series.modalities) > 1:
        mixed.append("modalities " + ", ".join(series.modalities))
    if len(series.kernels) > 1:
        mixed.append("kernels " + ", ".join("\\".join(k) for k in series.kernels))
    if len(series.sizes) > 1:
        mixed.append("image sizes " + ", ".join(f"{r}×{c}" for r, c in series.sizes))
    if not mixed:
        return []
    return [Violation("mixed_series", "series", "the files of this series disagree ("
                      + "; ".join(mixed) + "): send one series per exam, as the scanner "
                      "exported it", V, "; ".join(mixed), "one series")]


def _dimension(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    stack = series.stack
    n = stack.count
    if criteria.dimension == "2d":
        if n != 1:
            return [Violation("not_one_slice", "dimension", f"{n} slices; this question needs "
                              "a single slice (2-D): send only that slice", V, f"{n} slices",
                              "1 slice")]
        return []
    out = []
    if n < criteria.min_slices:
        out.append(Violation("too_few_slices", "min_slices", f"{n} slice{'s' * (n != 1)}; "
                             f"this question needs a volume of at least {criteria.min_slices}",
                             V, f"{n} slices", f"≥ {criteria.min_slices} slices"))
    if stack.positioned < n:
        out.append(Violation("no_positions", "dimension", f"{n - stack.positioned} of {n} "
                             "slices carry no ImagePositionPatient or ImageOrientationPatient, "
                             "so the volume cannot be built: export the series again without "
                             "removing them", V, f"{stack.positioned} of {n} placed",
                             "every slice placed"))
    if stack.orientations > 1:
        out.append(Violation("mixed_orientations", "dimension", f"the slices lie in "
                             f"{stack.orientations} different planes: one series of parallel "
                             "slices is needed", V, f"{stack.orientations} planes", "1 plane"))
    if stack.duplicates:
        out.append(Violation("duplicate_slices", "dimension", f"{stack.duplicates} slice"
                             f"{'s are' if stack.duplicates > 1 else ' is'} at the position of "
                             "another (the same file sent twice, or two series mixed)", V,
                             f"{stack.duplicates} duplicates", "distinct positions"))
    if stack.gaps and stack.spacing:
        first, last = stack.gaps[0]
        lost = sum(round((b - a) / stack.spacing) - 1 for a, b in stack.gaps)
        out.append(Violation("missing_slices", "dimension", f"the slices are "
                             f"{_mm(stack.spacing)} apart but jump from {first:.1f} to "
                             f"{last:.1f} mm" + (f" ({len(stack.gaps)} gaps)"
                                                 if len(stack.gaps) > 1 else "")
                             + f": about {lost} slice{'s' * (lost != 1)} missing; send the "
                             "whole series", V, f"{lost} missing", "no gap"))
    return out


def _thickness(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    rule = criteria.slice_thickness
    if rule is None:
        return []
    expected = rule.text("mm")
    thickness = series.slice_thickness()
    if thickness.value is None:
        why = f" ({thickness.note})" if thickness.note else ""
        return [Violation("slice_thickness_unknown", "slice_thickness_mm", "the headers give "
                          f"no slice thickness{why}; this question needs {expected}", V,
                          "unknown", expected)]
    if rule.contains(thickness.value):
        return []
    note = f" ({thickness.note})" if thickness.note else ""
    return [Violation("slice_thickness", "slice_thickness_mm",
                      f"slice thickness {_mm(thickness.value)}{note}; this question needs "
                      f"{expected}", V, _mm(thickness.value), expected)]


def _kernel(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    if criteria.kernel == "any":
        return []
    expected = f"a {criteria.kernel} kernel"
    reading = classify_kernel(series.manufacturer, series.kernel, criteria.extra_kernels)
    if reading.verdict == "unknown":
        name = f"kernel {reading.name!r}" if reading.name else "no kernel"
        return [Violation("kernel_unknown", "kernel", f"{name}: {reading.reason}, so its class "
                          f"is unknown; this question needs {expected} (a reviewer will "
                          "look)", criteria.kernel_unknown, reading.name or "none", expected)]
    if reading.verdict == criteria.kernel:
        return []
    accepted = (f" ({'mostly ' + criteria.kernel}: accepted, a reviewer will look)"
                if criteria.kernel_mismatch is W else "")
    return [Violation("kernel", "kernel", f"kernel {reading.name} is {reading.verdict} "
                      f"({reading.reason}); this question needs {expected}{accepted}",
                      criteria.kernel_mismatch, f"{reading.name} ({reading.verdict})",
                      expected)]


def _contrast(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    if criteria.contrast == "any":
        return []
    evidence = contrast_evidence(series)
    if criteria.contrast == "required":
        expected = "contrast injected"
        if evidence.state == "not_injected":
            return [Violation("contrast", "contrast", f"no contrast injection "
                              f"({evidence.reason}); this question needs an injected exam", V,
                              "not injected", expected)]
        if evidence.state == "unknown":
            return [Violation("contrast_unknown", "contrast", f"the headers do not say that "
                              f"contrast was injected ({evidence.reason}); this question needs "
                              "an injected exam (a reviewer will look)",
                              criteria.contrast_unknown, "unknown", expected)]
        return []
    if evidence.state == "injected":
        return [Violation("contrast", "contrast", f"contrast injected ({evidence.reason}); this "
                          "question needs an exam without injection", V, "injected",
                          "no injection")]
    return []


def _sequence(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    if criteria.sequence is None:
        return []
    reading = flair_reading(series)
    if reading.verdict == "flair":
        return []
    if reading.verdict == "other":
        return [Violation("sequence", "sequence", f"not a FLAIR: {reading.reason}; this "
                          "question needs a FLAIR", V, "not FLAIR", "FLAIR")]
    return [Violation("sequence_unknown", "sequence", f"FLAIR or not cannot be told: "
                      f"{reading.reason}; this question needs a FLAIR (a reviewer will look)",
                      criteria.sequence_unknown, "unknown", "FLAIR")]


def _words(acquisition: str) -> str:
    return "3-D" if acquisition == "3d" else ("2-D " + acquisition[3:]).strip()


def _ordered(acquisitions: Iterable[str]) -> list[str]:
    return sorted(acquisitions, key=lambda a: (a != "3d", a))


def _acquisition(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    rule = criteria.acquisition
    if not rule:
        return []
    readings, why = acquisitions(series)
    expected = " or ".join(_words(a) for a in _ordered(rule))
    fits = {a for a in readings if allowed(a, rule)}
    if fits == readings:
        return []
    found = " or ".join(_words(a) for a in _ordered(readings))
    if not fits:
        return [Violation("acquisition", "acquisition", f"a {found} acquisition ({why}); this "
                          f"question needs {expected}", V, found, expected)]
    return [Violation("acquisition_unknown", "acquisition", f"{why}: a {found} acquisition, "
                      f"and only {' or '.join(_words(a) for a in _ordered(fits))} is allowed; "
                      f"this question needs {expected} (a reviewer will look)",
                      criteria.acquisition_unknown, found, expected)]


def check_series(criteria: Criteria, series: SeriesSummary) -> list[Violation]:
    """Every rule of `criteria` on one series. A series of another modality, or a localizer,
    is told only that (its kernel or thickness would be noise)."""
    out = _mixed(series)
    if series.modality != criteria.modality:
        found = series.modality or "no Modality"
        article = "an" if found[0] in "AEFHILMNORSX" else "a"   # an MR, a CT, a US
        out.append(Violation("modality", "modality", f"{article} {found} series; this "
                             f"question needs {criteria.modality}", V, found,
                             criteria.modality))
        return out
    if series.localizer:
        out.append(Violation("localizer", "dimension", "a localizer (scout) image, not a "
                             "diagnostic series", V, "ImageType LOCALIZER", "a diagnostic "
                             "series"))
        return out
    out += _dimension(criteria, series)
    if series.pixel_spacing is None:
        out.append(Violation("no_pixel_spacing", "modality", "the headers carry no "
                             "PixelSpacing, so areas and volumes cannot be measured: export "
                             "the series again with it", V, "none", "PixelSpacing"))
    for rule in (_thickness, _kernel, _contrast, _sequence, _acquisition):
        out += rule(criteria, series)
    return out


@dataclass(frozen=True)
class SeriesCheck:
    series: SeriesSummary
    violations: tuple[Violation, ...]

    @property
    def accepted(self) -> bool:
        return not any(v.excludes for v in self.violations)


@dataclass(frozen=True)
class StudyCheck:
    """The verdict on a study: `chosen` is the series the exam will use (None when none
    qualifies), `violations` what the center is told, each naming its series."""

    series: tuple[SeriesCheck, ...]
    chosen: SeriesSummary | None
    violations: tuple[Violation, ...]

    @property
    def accepted(self) -> bool:
        return self.chosen is not None and not any(v.excludes for v in self.violations)


def _named(check: SeriesCheck) -> list[Violation]:
    return [dataclasses.replace(v, series=check.series.label) for v in check.violations]


def check_study(criteria: Criteria, series: Sequence[SeriesSummary]) -> StudyCheck:
    checks = tuple(SeriesCheck(s, tuple(check_series(criteria, s))) for s in series)
    if not checks:
        return StudyCheck((), None, (Violation(
            "no_series", "dimension", "the study holds no image series", V, "none",
            "one series"),))
    passing = [c for c in checks if c.accepted]
    if passing:
        best = min(passing, key=lambda c: (len(c.violations), -c.series.stack.count))
        out = _named(best)
        if len(passing) > 1:
            others = ", ".join(c.series.label for c in passing if c is not best)
            out.append(Violation("several_series", "series", f"{len(passing)} series meet the "
                                 f"criteria; {best.series.label} is taken (also: {others})", W,
                                 f"{len(passing)} series", "one series",
                                 series=best.series.label))
        return StudyCheck(checks, best.series, tuple(out))
    candidates = [c for c in checks if not c.series.localizer] or list(checks)
    closest = min(candidates, key=lambda c: (sum(v.excludes for v in c.violations),
                                             -c.series.stack.count))
    out = _named(closest)
    if len(checks) > 1:
        out.insert(0, Violation("no_matching_series", "series", f"none of the study's "
                                f"{len(checks)} series meets the criteria; the closest, "
                                f"{closest.series.label}, fails as follows", V,
                                f"{len(checks)} series", "one series that qualifies"))
    return StudyCheck(checks, None, tuple(out))
