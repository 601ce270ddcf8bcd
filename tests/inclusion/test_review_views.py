"""The review API over HTTP (server/inclusion/review_views.py, server/inclusion/viewer.py): the
queue, an exam as a reviewer sees it, its slices as PNG (the very bytes render_slice makes of
the files the test wrote), the grade, and every refusal; the viewer's bounded cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.inclusion.render import PRESETS, Mark, Window, render_slice
from server.inclusion.viewer import MAX_SIDE, ExamCache, ExamView
from server.keys import CONFIG, POOL
from server.store import exams as exam_store
from tests.helpers import AppServer
from tests.reviewing import BETWEEN, NODULE, NODULE_MM, WrittenExam, exam_in_review

KERNEL = {"code": "kernel", "rule": "kernel", "severity": "warning",
          "message": "kernel B30f is soft; this question prefers a hard kernel",
          "found": "B30f", "expected": "hard"}


@pytest.fixture
def review_server(example_event: Path, database_url: str, tmp_path: Path
                  ) -> Iterator[AppServer]:
    app = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    yield app
    app.stop()


def add_exam(server: AppServer, challenge: str, label: str, seed: int = 0,
             warnings: list[dict[str, Any]] | None = None) -> tuple[int, WrittenExam]:
    async def go() -> tuple[int, WrittenExam]:
        async with server.app[POOL].acquire() as conn:
            return await exam_in_review(conn, Path(server.app[CONFIG].data_dir),
                                        center="CHU de Lyon", challenge=challenge,
                                        label=label, seed=seed, warnings=warnings)
    return server.call(go())


def png(server: AppServer, path: str, token: str) -> tuple[int, str, bytes]:
    status, headers, raw = server.request("GET", path, token)
    return status, headers.get("Content-Type", ""), raw


def test_queue_viewer_slices_and_grade(review_server: AppServer) -> None:
    server = review_server
    tokens = server.tokens()
    martin, leroy = tokens["Dr Martin"], tokens["Dr Leroy"]
    chest, written = add_exam(server, "nodules-3d", "chest-01", warnings=[KERNEL])
    l3, _ = add_exam(server, "sarcopenia", "l3-01", seed=1)

    status, body = server.json("GET", "/api/v1/review/queue", token=martin)
    assert status == 200
    assert [(q["challenge"], q["reading"], [e["id"] for e in q["waiting"]], q["in_review"])
            for q in body["queues"]] == [("sarcopenia", "single", [l3], 1),
                                         ("nodules-3d", "double", [chest], 1)]
    status, body = server.json("GET", "/api/v1/review/queue", token=leroy)
    assert [q["challenge"] for q in body["queues"]] == ["edss", "nodules-3d"]

    status, exam = server.json("GET", f"/api/v1/review/exams/{chest}", token=martin)
    assert status == 200
    assert (exam["slices"], exam["spacing"], exam["window"]["name"]) == (
        {"axial": 24, "coronal": 32, "sagittal": 32}, [BETWEEN, 1.0, 1.0], "lung")
    assert (exam["your_reading"], exam["readings"], exam["nodules"], exam["mask"]) == (
        1, [], 1, True)
    assert exam["summary"]["kernel"] == "B60f" and "center" not in exam
    assert [w["code"] for w in exam["warnings"]] == ["kernel"]

    # The PNG is render_slice's, of the volume, mask and marks the test itself wrote.
    marks = [Mark((float(NODULE[0]), float(NODULE[1]), float(NODULE[2])), NODULE_MM / 2)]
    spacing = (BETWEEN, 1.0, 1.0)
    cases: list[tuple[str, dict[str, Any], str]] = [
        (f"axial/{NODULE[0]}", {"window": PRESETS["lung"]}, ""),
        (f"axial/{NODULE[0]}", {"window": PRESETS["lung"], "overlay": False}, "?overlay=0"),
        (f"coronal/{NODULE[1]}", {"window": Window("custom", 40, 400)}, "?window=40,400"),
        ("sagittal/3", {"window": PRESETS["bone"]}, "?window=bone"),
    ]
    for where, kwargs, query in cases:
        axis, index = where.split("/")
        overlay = kwargs.pop("overlay", True)
        expected = render_slice(written.hu, int(index), axis, kwargs["window"],  # type: ignore[arg-type]
                                spacing=spacing, mask=written.mask if overlay else None,
                                marks=marks if overlay else None, max_side=MAX_SIDE)
        status, kind, raw = png(server, f"/api/v1/review/exams/{chest}/slices/{where}{query}",
                                martin)
        assert (status, kind) == (200, "image/png") and raw == expected, where

    # Refusals, each with render.py's or the store's words.
    refusals = [
        ("GET", f"/api/v1/review/exams/{chest}/slices/axial/24", martin, 400, "bad_slice",
         "axial slice 24 is out of range: the volume has 24 axial slices (0 to 23)"),
        ("GET", f"/api/v1/review/exams/{chest}/slices/oblique/2", martin, 400, "bad_slice",
         "unknown axis 'oblique'"),
        ("GET", f"/api/v1/review/exams/{chest}/slices/axial/2?window=mediastinum", martin, 400,
         "bad_slice", "unknown window 'mediastinum'"),
        ("GET", f"/api/v1/review/exams/{chest}/slices/axial/2?window=40,0", martin, 400,
         "bad_slice", "the width must be a number of at least 1"),
        ("GET", f"/api/v1/review/exams/{l3}", leroy, 403, "not_your_question", "sarcopenia"),
        ("GET", f"/api/v1/review/exams/{l3}/slices/axial/0", leroy, 403, "not_your_question",
         "sarcopenia"),
        ("GET", "/api/v1/review/exams/987654", martin, 404, "unknown_exam", "no exam 987654"),
        ("GET", "/api/v1/review/queue", tokens["CHU de Lyon"], 403, "forbidden", "reviewer"),
        ("POST", f"/api/v1/review/exams/{l3}/grade", tokens["organizer"], 403, "forbidden",
         "reviewer"),
        ("POST", f"/api/v1/review/exams/{l3}/grade", martin, 400, "bad_grade", "A, B, C or D"),
    ]
    for method, path, token, code_status, code, words in refusals:
        status, body = server.json(method, path, token=token,
                                   body={"grade": "E"} if method == "POST" else None)
        assert (status, body["error"]["code"]) == (code_status, code), path
        assert words in body["error"]["message"], body

    status, body = server.json("POST", f"/api/v1/review/exams/{l3}/grade", token=martin,
                               body={"grade": "A", "comment": "L3 clean"})
    assert status == 200
    assert (body["reading"], body["settled"], body["stage"]) == (1, "A", "kept")
    assert body["exam"]["readings"] == [{"reading": 1, "grade": "A", "comment": "L3 clean",
                                         "yours": True}]
    status, body = server.json("POST", f"/api/v1/review/exams/{l3}/grade", token=martin,
                               body={"grade": "B"})
    assert (status, body["error"]["code"]) == (409, "not_in_review")

    status, body = server.json("POST", f"/api/v1/review/exams/{chest}/grade", token=martin,
                               body={"grade": "B", "comment": "ok"})
    assert (status, body["settled"], body["exam"]["next"]) == (200, None, None)
    status, body = server.json("POST", f"/api/v1/review/exams/{chest}/grade", token=martin,
                               body={"grade": "B"})
    assert (status, body["error"]["code"]) == (409, "already_graded")
    status, seen = server.json("GET", f"/api/v1/review/exams/{chest}", token=leroy)
    assert (seen["your_reading"], seen["readings"]) == (2, [])      # blind
    status, seen = server.json("GET", f"/api/v1/review/exams/{chest}", token=tokens["organizer"])
    assert status == 200 and seen["center"] == "CHU de Lyon" and len(seen["readings"]) == 1

    async def lines() -> list[str]:
        async with server.app[POOL].acquire() as conn:
            return [e.message for e in (await exam_store.timeline(conn, [l3]))[l3]]
    assert server.call(lines())[-2:] == ["expert reading: graded A: L3 clean",
                                         "kept: graded A by the experts"]


def _view(n: int) -> ExamView:
    import numpy as np

    volume = np.zeros((n, 4, 4), dtype=np.float32)
    return ExamView(volume, (1.0, 1.0, 1.0), PRESETS["lung"], "lung", PRESETS["lung"])


def test_the_cache_is_bounded_and_reads_an_exam_once() -> None:
    async def go() -> None:
        cache = ExamCache(max_exams=2, max_bytes=3 * 64)   # three 1-slice volumes
        loads: list[str] = []

        def loader(key: str, n: int = 1) -> Any:
            def load() -> ExamView:
                loads.append(key)
                return _view(n)
            return load

        first = await asyncio.gather(*(cache.get("a", loader("a")) for _ in range(3)))
        assert loads == ["a"] and first[0] is first[1] is first[2]
        await cache.get("b", loader("b"))
        await cache.get("a", loader("a"))             # a is the most recent now
        await cache.get("c", loader("c"))             # b goes: two exams at most
        assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
        await cache.get("d", loader("d", 2))          # two slices' bytes: a goes too
        assert ("a" in cache, "c" in cache, "d" in cache) == (False, True, True)
        assert cache.nbytes <= cache.max_bytes
        big = await cache.get("e", loader("e", 4))   # larger than the cache: served, not kept
        assert big.shape == (4, 4, 4) and "e" not in cache and cache.nbytes <= cache.max_bytes

        def broken() -> ExamView:
            raise ValueError("no DICOM file in 0")
        with pytest.raises(ValueError, match="no DICOM file"):
            await cache.get("f", broken)
        assert "f" not in cache
    asyncio.run(go())


def test_a_dicom_seg_and_a_nifti_land_on_the_series_grid(tmp_path: Path) -> None:
    """The viewer reads a DICOM SEG made by highdicom on the series and the NIfTI mask both
    onto the series' (slice, row, column) grid; the nodule mark comes from its mm position."""
    import highdicom as hd
    import numpy as np
    import pydicom
    from pydicom.sr.codedict import codes

    from server.inclusion.viewer import load_exam
    from tests.reviewing import write_exam

    folder = tmp_path / "exam"
    written = write_exam(folder)
    view = load_exam(folder, written.summary)
    assert np.array_equal(view.mask, written.mask) and np.array_equal(view.volume, written.hu)
    assert [(m.centre, m.radius_mm) for m in view.marks] == [
        ((float(NODULE[0]), float(NODULE[1]), float(NODULE[2])), NODULE_MM / 2)]
    assert (view.preset, view.spacing) == ("lung", (BETWEEN, 1.0, 1.0))

    sources = sorted((pydicom.dcmread(p) for p in (folder / "series" / "0").glob("*.dcm")),
                     key=lambda ds: float(ds.ImagePositionPatient[2]))
    labels = np.stack([(written.mask == 1), (written.mask == 2)], axis=-1).astype(np.uint8)
    segments = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Lung if n == 1 else codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in ((1, "lungs"), (2, "nodule"))]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Podium tests",
        manufacturer_model_name="review", software_versions="1", device_serial_number="1")
    seg.save_as(folder / "annotation" / "seg.dcm")
    from_seg = load_exam(folder, {**written.summary, "mask": "annotation/seg.dcm",
                                  "nodules": []})
    assert np.array_equal(from_seg.mask, written.mask) and from_seg.marks == []

    # One segment: highdicom names it in the shared functional groups, not in each frame.
    lungs = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels[..., :1],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments[:1], series_instance_uid=hd.UID(), series_number=3,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Podium tests",
        manufacturer_model_name="review", software_versions="1", device_serial_number="1")
    assert "SegmentIdentificationSequence" not in lungs.PerFrameFunctionalGroupsSequence[0]
    lungs.save_as(folder / "annotation" / "lungs.dcm")
    from_one = load_exam(folder, {**written.summary, "mask": "annotation/lungs.dcm"})
    assert np.array_equal(from_one.mask, (written.mask == 1).astype(np.uint8))

    # The intake's mask check places both SEGs with the same function, on its own Volume.
    from server.inclusion.annotation import Volume
    from server.inclusion.pipeline import _read_mask

    first = sources[0]
    volume = Volume(written.mask.shape, tuple(float(v) for v in first.ImagePositionPatient),
                    spacing=(1.0, 1.0, BETWEEN))
    assert np.array_equal(_read_mask(folder / "annotation" / "seg.dcm", volume), written.mask)
    assert np.array_equal(_read_mask(folder / "annotation" / "lungs.dcm", volume),
                          written.mask == 1)
