"""A series' summary from its headers: built one file at a time, nothing of the files kept;
the thickness from SliceThickness or from the positions; multi-frame images from highdicom."""

from __future__ import annotations

import gc
import io
import json
import math
import warnings
import weakref
from collections.abc import Iterator

import highdicom
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from server.inclusion.check import check_series
from server.inclusion.criteria import Criteria
from server.inclusion.headers import (
    SeriesBuilder,
    SeriesSummary,
    Slice,
    StudyBuilder,
    plane_of,
    slice_thickness,
    stack_of,
    summary_from_json,
    summary_to_json,
)

from . import corpus


def test_a_summary_keeps_nothing_of_the_files_it_read() -> None:
    seen: list[weakref.ref[Dataset]] = []

    def files() -> Iterator[Dataset]:
        for ds in corpus.SIEMENS_CHEST_B70F.datasets():
            read = corpus.read_back(ds)
            seen.append(weakref.ref(read))
            yield read

    summary = SeriesSummary.from_datasets(files())
    gc.collect()
    assert len(seen) == 24 and all(ref() is None for ref in seen)
    assert summary.files == 24 and summary.stack.count == 24
    assert summary.kernel == ("B70f",) and summary.manufacturer == "SIEMENS"
    assert summary.label == "series 3 'Thorax 1.0 B70f'"


def test_a_builder_takes_files_as_they_come_in_any_order() -> None:
    files = corpus.GE_CHEST_LUNG.files() + corpus.SIEMENS_TOPOGRAM.files()
    study = StudyBuilder()
    for ds in reversed(files):
        study.add(ds)
    lung, topogram = sorted(study.series(), key=lambda s: -s.files)
    assert lung.stack.spacing == pytest.approx(0.625) and not lung.stack.gaps
    assert lung.stack.plane == "axial" and lung.stack.extent_mm == pytest.approx(23 * 0.625)
    assert topogram.localizer and not lung.localizer
    builder = SeriesBuilder()
    assert builder.summary().stack.count == 0


def test_thickness_from_the_positions_when_slice_thickness_is_absent_or_varies() -> None:
    absent = corpus.ct("GE MEDICAL SYSTEMS", "LightSpeed VCT", "LUNG", "Lung", None, 24,
                       spacing=0.8)
    t = SeriesSummary.from_datasets(absent.files()).slice_thickness()
    assert (t.value, t.source) == (pytest.approx(0.8), "spacing")
    assert t.note == "SliceThickness is absent; measured from the slice positions"
    files = corpus.GE_CHEST_LUNG.files()
    files[3].SliceThickness = 5.0
    t = SeriesSummary.from_datasets(files).slice_thickness()
    assert (t.value, t.source) == (pytest.approx(0.625), "spacing")
    assert t.note.startswith("SliceThickness varies (0.625, 5 mm)")
    # Overlapping reconstruction (1 mm every 0.7 mm) keeps its nominal thickness.
    t = SeriesSummary.from_datasets(corpus.SIEMENS_CHEST_B70F.files()).slice_thickness()
    assert (t.value, t.source) == (1.0, "SliceThickness")
    # One slice without SliceThickness: nothing to measure.
    lone = corpus.ct("SIEMENS", "SOMATOM", "B30f", "L3", None, 1)
    t = SeriesSummary.from_datasets(lone.files()).slice_thickness()
    assert (t.value, t.source) == (None, "none")


def test_the_plane_of_oblique_slices() -> None:
    assert plane_of((0.0, 0.26, 0.97)) == "axial"       # tilted 15° along AC-PC
    assert plane_of((0.98, 0.0, 0.2)) == "sagittal"
    assert plane_of((0.0, -1.0, 0.0)) == "coronal"


def test_unreadable_values_are_absent_not_a_crash() -> None:
    files = []
    for ds in corpus.GE_CHEST_LUNG.datasets():
        ds.ImagePositionPatient = ["1", "2"]          # two values where three are due
        # Values no writer should write, as raw bytes in the file: DS "nan", IS "x".
        ds[0x00180050] = RawDataElement(Tag(0x00180050), "DS", 4, b"nan ", 0, False, True)
        ds[0x00200011] = RawDataElement(Tag(0x00200011), "IS", 2, b"x ", 0, False, True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # pydicom warns as it writes them
            files.append(corpus.read_back(ds))
    summary = SeriesSummary.from_datasets(files)      # and as we read them: not here
    assert summary.stack.positioned == 0 and summary.series_number is None
    assert summary.slice_thickness().value is None


def _legacy(series: corpus.Series) -> Dataset:
    """A Legacy Converted Enhanced CT image made by highdicom from the series' files."""
    legacy = series.datasets()
    for ds in legacy:
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "Anon^", "", "F"
        ds.StudyID, ds.StudyDate, ds.StudyTime = "1", "20190301", "101010"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.ContentDate, ds.ContentTime, ds.AcquisitionNumber = "20190301", "101010", 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    image = highdicom.legacy.LegacyConvertedEnhancedCTImage(
        legacy, series_instance_uid=generate_uid(), series_number=30,
        sop_instance_uid=generate_uid(), instance_number=1)
    buffer = io.BytesIO()
    image.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer, stop_before_pixels=True)


def test_a_summary_survives_json_as_the_dicom_node_writes_it_in_its_marker() -> None:
    """Every series of the corpus (CT and MR of four vendors, a multi-frame image, a
    localizer): the summary read back from JSON is the summary, and checks the same."""
    series = [v for v in vars(corpus).values() if isinstance(v, corpus.Series)]
    assert len(series) > 20
    summaries = [SeriesSummary.from_datasets(s.files()) for s in series]
    summaries.append(SeriesSummary.from_datasets([_legacy(corpus.SIEMENS_CHEST_B70F)]))
    for summary in summaries:
        back = summary_from_json(json.loads(json.dumps(summary_to_json(summary))))
        assert back == summary
        assert back.stack == summary.stack and back.slice_thickness() == summary.slice_thickness()
    assert summaries[-1].files == 1 and summaries[-1].stack.count == 24


def test_a_multi_frame_image_counts_a_slice_per_frame(criteria: dict[str, Criteria]) -> None:
    single = SeriesSummary.from_datasets(corpus.SIEMENS_CHEST_B70F.files())
    multi = SeriesSummary.from_datasets([_legacy(corpus.SIEMENS_CHEST_B70F)])
    assert multi.files == 1 and multi.stack.count == 24
    assert multi.stack.spacing == pytest.approx(single.stack.spacing)
    assert multi.slice_thickness() == single.slice_thickness()
    assert multi.kernel == ("B70f",) and multi.pixel_spacing == single.pixel_spacing
    assert check_series(criteria["nodules"], multi) == []
    thick = SeriesSummary.from_datasets([_legacy(corpus.GE_CHEST_THICK)])
    assert [v.code for v in check_series(criteria["nodules"], thick)] == ["slice_thickness"]


@settings(max_examples=30, deadline=None)
@given(yaw=st.floats(-3.1, 3.1), tilt=st.floats(-1.5, 1.5), spacing=st.floats(0.3, 8.0),
       count=st.integers(3, 40), shift=st.floats(-5, 5), drop=st.integers(1, 38))
def test_spacing_and_gaps_along_any_normal(yaw: float, tilt: float, spacing: float, count: int,
                                           shift: float, drop: int) -> None:
    """Whatever the plane (oblique, tilted gantry shifting slices in-plane), the spacing is
    measured along the normal, and one slice taken out is one slice missing."""
    row = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    column = np.array([-math.sin(yaw) * math.cos(tilt), math.cos(yaw) * math.cos(tilt),
                       math.sin(tilt)])
    normal = np.cross(row, column)
    orientation = (*row.tolist(), *column.tolist())
    slices = tuple(Slice(tuple((np.array([10.0, -20.0, 30.0]) + k * spacing * normal
                                + k * shift * 0.01 * column).tolist()),  # type: ignore[arg-type]
                         orientation, None) for k in range(count))
    stack = stack_of(slices)
    assert stack.spacing == pytest.approx(spacing) and not stack.gaps and not stack.duplicates
    assert stack.plane == plane_of(tuple(normal.tolist()))  # type: ignore[arg-type]
    assert slice_thickness(slices, stack).value == pytest.approx(spacing)
    if count >= 4 and 0 < drop < count - 1:    # at least two steps of the rule remain
        holed = stack_of(slices[:drop] + slices[drop + 1:])
        assert len(holed.gaps) == 1 and holed.gaps[0][1] - holed.gaps[0][0] == \
            pytest.approx(2 * spacing)
