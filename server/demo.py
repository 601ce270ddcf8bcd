"""`podium demo`'s event: a complete synthetic final day, written from a seed.

The three challenges of the 2019 final with the paper's durations and kinds, data shaped like
the real thing (512×512 CT slices at L3 in Hounsfield units with muscle masks of 100–200 cm²;
nodule labels; EDSS at two years, skewed to mild disability), plus the nodule question in full
as the seed asked it (small 3-D chest CT series with 1 to 5 nodules: masks, candidates,
volumes and malignancy; server/demo_volumes.py), eight fictional teams, and a
folder of ready-made submissions per team, good ones of different quality and the mistakes
teams really make, with `submissions/README.md` and `submissions/expected.json` saying what
each file should give.

Nothing here is a person's data: every image is drawn from ellipses and noise, and the DICOM
files carry no name, identifier, date or institution: the patient and study attributes are
present but blank, as an anonymizer leaves them, with a FrameOfReferenceUID and the slice's full
geometry (ImageOrientationPatient, ImagePositionPatient), so that tools teams use (highdicom's
DICOM SEG, SimpleITK, dcm2niix) accept the released files.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from scipy import ndimage

from server.demo_inclusion import registration_toml, write_registration_pages
from server.demo_volumes import (
    Prediction,
    VolumeExam,
    chest_volume,
    dicom_series,
    nifti,
    nifti_slices_first,
    predict,
    voxel_candidates,
)

BoolMask = npt.NDArray[np.bool_]
Rng = np.random.Generator

SIZE = 512
HU_WINDOW = (-29, 150)
UID_PREFIX = "1.2.826.0.1.3680043.10.1071."
FIXED_DATE = (2019, 10, 14, 9, 0, 0)
SARCOPENIA_EXAMS = 12
NODULE_EXAMS = 40
EDSS_PATIENTS = 40
NODULE_TASK_EXAMS = 10  # 3-D CT volumes of the full nodule task
SMALL = 64  # side of the 2-D stand-in images released for the nodule and EDSS exams

EVENT_TOML = """\
# A synthetic rehearsal of the JFR 2019 data challenge's final day, written by `podium demo`.
# Every image, label and team is made up. Tokens are left out: `podium serve` and
# `podium tokens` generate them into the data dir. Example uploads: submissions/README.md.

[event]
name = "JFR 2019 data challenge — final day (demo)"
timezone = "Europe/Paris"

[[challenges]]
slug = "sarcopenia"
title = "Sarcopenia — muscle surface at L3 on CT"
kind = "segmentation-surface"
duration_minutes = 60
truth = "truth/sarcopenia"
release = "release/sarcopenia"
counts = "last"
max_submissions = 30
team_feedback = "score"
leaderboard = "jury"
upload_grace_seconds = 30
hu_window = [-29, 150]

[challenges.inclusion]                # before the final day: the exams the centers sent
target = 6
margin = 0.1
keep = ["A", "B", "C"]
reading = "single"

[challenges.inclusion.criteria]
modality = "CT"
dimension = "2d"
slice_thickness_mm = { min = 1.25, max = 7 }
kernel = "soft"
contrast = "any"
mask = true

[challenges.splits]
seed = 2019
sets = { training = 0.5, validation = 0.25, test = 0.25 }
stratify = ["center"]

[[challenges]]
slug = "nodules"
title = "Pulmonary nodules — probably malignant on CT"
kind = "binary-probability"
duration_minutes = 120
truth = "truth/nodules.csv"
release = "release/nodules"
counts = "last"
max_submissions = 30
team_feedback = "score"
leaderboard = "jury"
freeze_minutes = 10

[[challenges]]
slug = "edss"
title = "Multiple sclerosis — EDSS at two years from MRI"
kind = "regression"
duration_minutes = 60
truth = "truth/edss.csv"
release = "release/edss"
counts = "last"
max_submissions = 30
team_feedback = "score"
leaderboard = "teams"

[challenges.inclusion]
target = 6
dates = "keep"                        # the exam date is part of the question
reading = "single"

[challenges.inclusion.criteria]
modality = "MR"
dimension = "3d"
min_slices = 6
sequence = "flair"
acquisition = ["3d", "2d-axial"]

[challenges.inclusion.criteria.clinical]
age = { type = "number", min = 18, max = 100 }
sex = { type = "choice", choices = ["M", "F"] }
exam_date = { type = "date", earliest = 2000-01-01 }
edss_2y = { type = "number", min = 0, max = 10, step = 0.5 }

[challenges.splits]
seed = 2019
sets = { training = 0.5, validation = 0.25, test = 0.25 }
stratify = ["center", "value"]
value = "edss_2y"
bins = [0, 3, 6, 10]

# The nodule question as the seed asked it: detect, segment, measure, classify (3-D CT).
[[challenges]]
slug = "nodules-3d"
title = "Pulmonary nodules — detect, segment, measure and classify on 3-D CT"
kind = "nodule-task"
duration_minutes = 120
truth = "truth/nodules-3d"
release = "release/nodules-3d"
counts = "last"
max_submissions = 30
team_feedback = "score"
leaderboard = "jury"
tolerance_mm = 1.0

[challenges.inclusion]
target = 6
reading = "double"                    # two blind readings, a third settles a disagreement

[challenges.inclusion.criteria]
modality = "CT"
dimension = "3d"
min_slices = 6                        # the demo's series are tiny; a real event asks 20 or more
slice_thickness_mm = { below = 1.25 }
kernel = "hard"
kernel_mismatch = "warning"
contrast = "any"

[challenges.inclusion.criteria.nodules]
count = { min = 1, max = 5 }
malignant = { volume_mm3_above = 100, diameter_mm_above = 6 }

[challenges.splits]
seed = 2019
sets = { training = 0.5, validation = 0.25, test = 0.25 }
stratify = ["center", "class"]
"""

# Made-up names (checked against no company we know of), and what each registered for.
TEAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Hounsfield Harriers", ("sarcopenia", "nodules", "nodules-3d")),
    ("Bayesian Baguettes", ("nodules", "edss", "nodules-3d")),
    ("Pixel Pétanque", ("sarcopenia", "edss")),
    ("Les Voxelistes", ("sarcopenia", "nodules", "edss", "nodules-3d")),
    ("Gradient Gargoyles", ("nodules", "nodules-3d")),
    ("Croissant Convolution", ("sarcopenia", "nodules", "nodules-3d")),
    ("Sagittal Sunrise", ("sarcopenia", "edss")),
    ("Dice Rollers", ("sarcopenia", "nodules", "edss", "nodules-3d")),
)


@dataclass(frozen=True)
class Exam:
    id: str
    hu: npt.NDArray[np.int16]
    muscle: BoolMask          # the anatomical muscle mask (the truth mask)
    spacing: float            # mm, same along rows and columns
    surface_mm2: float        # of the muscle inside the HU window, as the evaluator counts it


@dataclass(frozen=True)
class Example:
    """One ready-made submission and what scoring it must give."""

    team: str
    challenge: str
    filename: str
    what: str
    status: str
    codes: tuple[str, ...] = ()


def write_demo_event(target: Path, *, seed: int = 2019, now: datetime | None = None) -> Path:
    """Write the demo event into `target` (created if needed); returns its event.toml.
    Registration is open around `now` (the first start): from three weeks before to ten
    days after."""
    target = Path(target)
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    truth, release, submissions = target / "truth", target / "release", target / "submissions"
    for folder in (truth / "sarcopenia" / "images", truth / "sarcopenia" / "masks",
                   release / "sarcopenia", release / "nodules", release / "edss", submissions):
        folder.mkdir(parents=True, exist_ok=True)

    exams = [l3_slice(f"L3-{n:03d}", rng) for n in range(1, SARCOPENIA_EXAMS + 1)]
    for exam in exams:
        image = ct_dicom(exam.hu, exam.spacing, exam.id)
        (truth / "sarcopenia" / "images" / f"{exam.id}.dcm").write_bytes(image)
        (release / "sarcopenia" / f"{exam.id}.dcm").write_bytes(image)
        (truth / "sarcopenia" / "masks" / f"{exam.id}.png").write_bytes(png(exam.muscle, 255))

    nodule_ids = [f"NOD-{n:03d}" for n in range(1, NODULE_EXAMS + 1)]
    labels = nodule_labels(rng, len(nodule_ids))
    _write_csv(truth / "nodules.csv", ("id", "label"), list(zip(nodule_ids, labels, strict=True)))
    for exam_id, label in zip(nodule_ids, labels, strict=True):
        hu, spacing = chest_slice(rng, bool(label))
        (release / "nodules" / f"{exam_id}.dcm").write_bytes(ct_dicom(hu, spacing, exam_id))

    edss_ids = [f"SEP-{n:03d}" for n in range(1, EDSS_PATIENTS + 1)]
    edss = edss_values(rng, len(edss_ids))
    _write_csv(truth / "edss.csv", ("id", "value"),
               [(i, f"{v:.1f}") for i, v in zip(edss_ids, edss, strict=True)])
    for exam_id, value in zip(edss_ids, edss, strict=True):
        (release / "edss" / f"{exam_id}.dcm").write_bytes(flair_dicom(rng, value, exam_id))

    examples = _write_examples(submissions, rng, exams, nodule_ids, np.array(labels),
                               edss_ids, np.array(edss))
    # Its own generator: the 3-D task leaves the other challenges' files as they were.
    examples += _write_nodule_task(truth / "nodules-3d", release / "nodules-3d", submissions,
                                   np.random.default_rng([seed, 3]))
    (submissions / "README.md").write_text(_readme(examples), encoding="utf-8")
    expected = {f"{team_folder(e.team)}/{e.filename}": {
        "team": e.team, "challenge": e.challenge, "status": e.status, "codes": list(e.codes),
    } for e in examples}
    (submissions / "expected.json").write_text(json.dumps(expected, indent=2,
                                                          ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    return write_event_file(target, now)


def write_event_file(target: Path, now: datetime) -> Path:
    """The demo's event file and its registration pages alone (the images are written by
    `write_demo_event`); registration open from three weeks before `now` to ten days after,
    each split question's first training batch opened a month before (`with_batches`)."""
    target.mkdir(parents=True, exist_ok=True)
    write_registration_pages(target)
    day = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    opens, closes = day - timedelta(days=21), day + timedelta(days=10)
    event = target / "event.toml"
    event.write_text(with_batches(EVENT_TOML, now) + _teams_toml()
                     + registration_toml(f"{opens:%Y-%m-%dT%H:%M:%SZ}",
                                         f"{closes:%Y-%m-%dT%H:%M:%SZ}"), encoding="utf-8")
    return event


TIMEZONE = "Europe/Paris"     # the event's, as EVENT_TOML says
FIRST_BATCH_DAYS = 33         # the seed's: September 11th, the final on October 14th

BATCHES_TOML = """
# The training set to the registered teams in two batches, as the seed sent it
# (docs/datasets.md, "Batches"): batch-1 opened on its own a month before the final day;
# batch-2 has no `opens`: the demo's organizers opened it on the first start.
[[challenges.batches]]
name = "batch-1"
set = "training"
part = 1
parts = 2
opens = {opens}           # the event's time zone

[[challenges.batches]]
name = "batch-2"
set = "training"
part = 2
parts = 2
"""


def first_batch_opens(now: datetime) -> datetime:
    """09:00 in the event's time zone, `FIRST_BATCH_DAYS` before `now`'s day there."""
    local = now.astimezone(ZoneInfo(TIMEZONE)) - timedelta(days=FIRST_BATCH_DAYS)
    return datetime(local.year, local.month, local.day, 9, tzinfo=ZoneInfo(TIMEZONE))


def with_batches(text: str, now: datetime) -> str:
    """The event file with two training batches after each `[challenges.splits]` table."""
    opens = f"{first_batch_opens(now):%Y-%m-%dT%H:%M:%S}"
    tables = text.split("\n[challenges.splits]\n")
    for n in range(1, len(tables)):
        # The splits table ends at the first blank line (or at the end of the text).
        splits, _, rest = tables[n].partition("\n\n")
        batches = BATCHES_TOML.format(opens=opens)
        tables[n] = splits.rstrip("\n") + "\n" + batches + ("\n" + rest if rest else "")
    return "\n[challenges.splits]\n".join(tables)


# --- synthetic images -----------------------------------------------------------------------

def l3_slice(exam_id: str, rng: Rng) -> Exam:
    """An axial CT slice at L3: air, subcutaneous fat, the abdominal wall, psoas and
    paraspinal muscles, a vertebra, viscera; muscle area drawn in 100–200 cm²."""
    spacing = round(float(rng.uniform(0.68, 0.86)), 4)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    y = (rows - SIZE / 2 - rng.normal(0, 4)) * spacing   # mm, anterior at the top
    x = (cols - SIZE / 2 - rng.normal(0, 4)) * spacing
    half_width, half_depth = rng.uniform(135, 165), rng.uniform(100, 125)
    r = np.sqrt((x / half_width) ** 2 + (y / half_depth) ** 2)

    spine_y = 0.42 * half_depth
    psoas = _ellipse(x, y, 36, spine_y - 4, 15, 20) | _ellipse(x, y, -36, spine_y - 4, 15, 20)
    paraspinal = (_ellipse(x, y, 30, spine_y + 36, 24, 17)
                  | _ellipse(x, y, -30, spine_y + 36, 24, 17))
    vertebra = _ellipse(x, y, 0, spine_y, 19, 16)
    canal = _ellipse(x, y, 0, spine_y + 24, 8, 7)
    outer = float(rng.uniform(0.86, 0.92))
    blobs = (psoas | paraspinal) & (r < outer) & ~vertebra & ~canal
    blob_mm2 = float(np.count_nonzero(blobs)) * spacing * spacing
    target_mm2 = float(rng.uniform(110, 185)) * 100
    ring_mm2 = max(2000.0, target_mm2 - blob_mm2)
    inner = float(np.sqrt(max(0.25, outer**2 - ring_mm2 / (np.pi * half_width * half_depth))))
    inner = min(inner, outer - 0.03)
    wall = (r < outer) & (r > inner + 0.03 * np.sin(5 * np.arctan2(y, x)))
    muscle = (wall | blobs) & ~vertebra & ~canal

    hu = np.full((SIZE, SIZE), -1000.0)
    hu[r < 1.0] = -105.0                                     # subcutaneous fat
    hu[r <= inner + 0.03] = 25.0                             # viscera
    visceral_fat = (r < inner) & (rng.random((SIZE, SIZE)) < 0.02)
    hu[ndimage.binary_dilation(visceral_fat, iterations=2)] = -95.0
    hu[muscle] = float(rng.uniform(38, 55))
    hu[vertebra] = 260.0
    hu[vertebra & ~_ellipse(x, y, 0, spine_y, 16, 13)] = 750.0  # cortical bone
    hu[canal] = 15.0
    hu += rng.normal(0, 10, hu.shape)
    # Intramuscular fat: muscle-mask pixels below the window, which the HU rule removes.
    infiltration = muscle & (rng.random((SIZE, SIZE)) < 0.03)
    hu[infiltration] = -70.0 + rng.normal(0, 10, int(np.count_nonzero(infiltration)))
    hu_int = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    inside = (hu_int >= HU_WINDOW[0]) & (hu_int <= HU_WINDOW[1])
    surface = float(np.count_nonzero(muscle & inside)) * spacing * spacing
    return Exam(exam_id, hu_int, muscle, spacing, surface)


def _ellipse(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], cx: float, cy: float,
             ax: float, ay: float) -> BoolMask:
    return np.asarray(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1.0)


def chest_slice(rng: Rng, malignant: bool) -> tuple[npt.NDArray[np.int16], float]:
    """A small chest CT stand-in: two lungs and a nodule, larger when malignant."""
    rows, cols = np.mgrid[0:SMALL, 0:SMALL].astype(np.float64)
    hu = np.full((SMALL, SMALL), -1000.0)
    hu[((rows - 32) / 26) ** 2 + ((cols - 32) / 30) ** 2 < 1] = 40.0
    for cx in (20.0, 44.0):
        hu[((rows - 31) / 19) ** 2 + ((cols - cx) / 10) ** 2 < 1] = -850.0
    radius = rng.uniform(2.5, 5.0) if malignant else rng.uniform(1.0, 3.0)
    cy, cx = rng.uniform(22, 40), rng.choice([20.0, 44.0]) + rng.uniform(-4, 4)
    hu[(rows - cy) ** 2 + (cols - cx) ** 2 < radius**2] = 30.0
    hu += rng.normal(0, 15, hu.shape)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), 5.5


def nodule_labels(rng: Rng, n: int) -> list[int]:
    labels = [0] * n
    for index in rng.choice(n, size=int(round(n * 0.45)), replace=False):
        labels[int(index)] = 1
    return labels


def edss_values(rng: Rng, n: int) -> list[float]:
    """EDSS at two years: 0, then 1.0 to 9.5 by half steps (0.5 is not on the scale), skewed
    to mild disability as in a relapsing-remitting cohort."""
    raw = rng.gamma(2.0, 1.25, n)
    steps = np.clip(np.round(raw * 2) / 2, 0.0, 9.5)
    return [0.0 if v < 0.75 else float(v) for v in steps]


def ct_dicom(hu: npt.NDArray[np.int16], spacing: float, exam_id: str) -> bytes:
    """A CT slice as scanners store it: 12-bit values with RescaleIntercept −1024."""
    ds = _dataset(CTImageStorage, exam_id, "CT")
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
    _axial_geometry(ds, hu.shape, float(f"{spacing:.4f}"), -450.0)
    ds.SliceThickness = "2.5"
    ds.KVP = "120"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.PixelData = np.clip(hu.astype(np.int32) + 1024, 0, 4095).astype(np.uint16).tobytes()
    return _save(ds)


def flair_dicom(rng: Rng, edss: float, exam_id: str) -> bytes:
    """A small FLAIR-like brain slice whose white-matter lesions grow with disability."""
    rows, cols = np.mgrid[0:SMALL, 0:SMALL].astype(np.float64)
    image = np.zeros((SMALL, SMALL))
    image[((rows - 32) / 27) ** 2 + ((cols - 32) / 22) ** 2 < 1] = 420.0
    image[((rows - 30) / 9) ** 2 + ((cols - 32) / 4) ** 2 < 1] = 120.0  # ventricles
    for _ in range(int(rng.poisson(1 + edss))):
        cy, cx = rng.uniform(16, 48), rng.uniform(16, 48)
        image[(rows - cy) ** 2 + (cols - cx) ** 2 < rng.uniform(1, 4)] = 780.0
    image += rng.normal(0, 12, image.shape)
    ds = _dataset(MRImageStorage, exam_id, "MR")
    ds.Rows, ds.Columns = image.shape
    ds.PixelSpacing = ["3.5", "3.5"]
    _axial_geometry(ds, image.shape, 3.5, 30.0)
    ds.SliceThickness = "3"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.clip(np.round(image), 0, 4095).astype(np.uint16).tobytes()
    return _save(ds)


def _dataset(sop_class: UID, exam_id: str, modality: str) -> Dataset:
    # UIDs derived from the exam id: the same seed writes the same files. No patient fields.
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id, "study"])
    ds.SeriesInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id, "series"])
    ds.FrameOfReferenceUID = generate_uid(UID_PREFIX, entropy_srcs=[exam_id, "frame"])
    # Type 2 attributes an anonymized release keeps, empty (DICOM PS3.15 dummies).
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, "")
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = "1", "1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _axial_geometry(ds: Dataset, shape: tuple[int, ...], spacing: float, z: float) -> None:
    """A supine axial slice centred on the scanner's axis."""
    rows, columns = shape[0], shape[1]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [f"{-(columns - 1) / 2 * spacing:.4f}",
                               f"{-(rows - 1) / 2 * spacing:.4f}", f"{z:.1f}"]
    ds.PatientPosition = "HFS"


def _save(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def png(mask: BoolMask, value: int = 1) -> bytes:
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * value).save(out, format="PNG", optimize=True)
    return out.getvalue()


def npy(mask: BoolMask) -> bytes:
    out = io.BytesIO()
    np.save(out, mask.astype(np.uint8), allow_pickle=False)
    return out.getvalue()


def dicom_mask(exam: Exam, mask: BoolMask) -> bytes:
    """A mask saved the way many teams do it: the exam's DICOM with the pixels replaced
    (Rescale* tags left in; the evaluator reads stored values, so this is fine)."""
    ds = _dataset(CTImageStorage, exam.id + "-mask", "CT")
    ds.Rows, ds.Columns = mask.shape
    ds.PixelSpacing = [f"{exam.spacing:.4f}", f"{exam.spacing:.4f}"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = mask.astype(np.uint8).tobytes()
    return _save(ds)


# --- team predictions ---------------------------------------------------------------------

def predicted_mask(exam: Exam, rng: Rng, *, grow: int = 0, shift: int = 0,
                   noise: float = 0.0) -> BoolMask:
    """The truth mask as a model of some quality would draw it: dilated (grow > 0) or
    eroded (grow < 0), shifted, with a share of the boundary band flipped."""
    mask = exam.muscle.copy()
    if grow > 0:
        mask = ndimage.binary_dilation(mask, iterations=grow)
    elif grow < 0:
        mask = ndimage.binary_erosion(mask, iterations=-grow)
    if shift:
        mask = np.roll(mask, shift, axis=1)
    if noise:
        band = ndimage.binary_dilation(mask, iterations=2) & ~ndimage.binary_erosion(
            mask, iterations=2)
        mask = mask ^ (band & (rng.random(mask.shape) < noise))
    return np.asarray(mask, dtype=np.bool_)


def predicted_surfaces(exams: list[Exam], rng: Rng, bias: float, sd: float) -> dict[str, float]:
    return {e.id: round(e.surface_mm2 * (1 + bias + float(rng.normal(0, sd))), 1)
            for e in exams}


def probabilities(labels: npt.NDArray[np.int64], rng: Rng, skill: float) -> list[float]:
    score = skill * (2 * labels - 1) + rng.normal(0, 1, len(labels))
    return [round(float(p), 3) for p in 1 / (1 + np.exp(-score))]


def edss_guesses(edss: npt.NDArray[np.float64], rng: Rng, sd: float,
                 bias: float = 0.0) -> list[float]:
    guesses = edss + bias + rng.normal(0, sd, len(edss))
    return [round(float(v), 1) for v in np.clip(guesses, 0.0, 10.0)]


def _write_examples(folder: Path, rng: Rng, exams: list[Exam], nodule_ids: list[str],
                    labels: npt.NDArray[np.int64], edss_ids: list[str],
                    edss: npt.NDArray[np.float64]) -> list[Example]:
    examples: list[Example] = []

    def add(example: Example, data: bytes) -> None:
        path = folder / team_folder(example.team) / example.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        examples.append(example)

    def masks_zip(writer: Callable[[Exam, BoolMask], tuple[str, bytes]],
                  surfaces: dict[str, float] | None, *, surfaces_text: str | None = None,
                  grow: int = 0, shift: int = 0, noise: float = 0.0) -> bytes:
        members: dict[str, bytes] = {}
        for exam in exams:
            mask = predicted_mask(exam, rng, grow=grow, shift=shift, noise=noise)
            name, data = writer(exam, mask)
            members[name] = data
        if surfaces_text is not None:
            members["surfaces.csv"] = surfaces_text.encode("utf-8")
        elif surfaces is not None:
            members["surfaces.csv"] = _csv_bytes(("id", "surface_mm2"), list(surfaces.items()))
        return _zip(members)

    def as_png(exam: Exam, mask: BoolMask) -> tuple[str, bytes]:
        return f"{exam.id}.png", png(mask)

    # Sarcopenia: four valid teams of different quality, then the classic mistakes.
    add(Example("Les Voxelistes", "sarcopenia", "sarcopenia.zip",
                "masks saved as DICOM from the exam files, close to the truth", "scored"),
        masks_zip(lambda e, m: (f"dicom/{e.id}.dcm", dicom_mask(e, m)),
                  predicted_surfaces(exams, rng, 0.0, 0.015), noise=0.15))
    add(Example("Dice Rollers", "sarcopenia", "sarcopenia.zip",
                "PNG masks one pixel too thin", "scored"),
        masks_zip(as_png, predicted_surfaces(exams, rng, -0.03, 0.03), grow=-1, noise=0.1))
    add(Example("Hounsfield Harriers", "sarcopenia", "sarcopenia.zip",
                "PNG masks two pixels too wide, surfaces overestimated", "scored"),
        masks_zip(as_png, predicted_surfaces(exams, rng, 0.06, 0.04), grow=2))
    croissant = predicted_surfaces(exams, rng, -0.02, 0.09)
    add(Example("Croissant Convolution", "sarcopenia", "sarcopenia.zip",
                "masks in a masks/ folder, shifted by three pixels; surfaces.csv written by "
                "French Excel (semicolons, decimal commas)", "scored"),
        masks_zip(lambda e, m: (f"masks/{e.id}.png", png(m, 255)), None, shift=3, noise=0.2,
                  surfaces_text="id;surface_mm2\r\n" + "".join(
                      f"{i};{str(v).replace('.', ',')}\r\n" for i, v in croissant.items())))
    add(Example("Pixel Pétanque", "sarcopenia", "sarcopenia-wrong-size.zip",
                "masks saved at 256×256 after the model's resizing, not the exam's 512×512",
                "invalid", ("wrong_shape",)),
        masks_zip(lambda e, m: (f"{e.id}.png", png(m[::2, ::2])),
                  predicted_surfaces(exams, rng, 0.0, 0.05)))
    add(Example("Pixel Pétanque", "sarcopenia", "sarcopenia.zip",
                "the same masks resized back to 512×512, as NumPy arrays", "scored"),
        masks_zip(lambda e, m: (f"{e.id}.npy", npy(m)),
                  predicted_surfaces(exams, rng, 0.02, 0.06), noise=0.35))
    sunrise = predicted_surfaces(exams, rng, 0.0, 0.05)

    def ct_for_first(exam: Exam, mask: BoolMask) -> tuple[str, bytes]:
        if exam is exams[0]:
            return f"{exam.id}.dcm", ct_dicom(exam.hu, exam.spacing, exam.id)
        return f"{exam.id}.png", png(mask)

    add(Example("Sagittal Sunrise", "sarcopenia", "sarcopenia-ct-instead-of-mask.zip",
                f"for {exams[0].id} the CT image itself was zipped instead of its mask",
                "invalid", ("not_binary",)),
        masks_zip(ct_for_first, sunrise, grow=1))
    add(Example("Sagittal Sunrise", "sarcopenia", "sarcopenia-no-surfaces.zip",
                "the masks without surfaces.csv", "invalid", ("missing_surfaces",)),
        masks_zip(as_png, None, grow=1))

    # Nodules: probabilities of malignancy.
    def probs_csv(skill: float) -> bytes:
        return _csv_bytes(("id", "probability"),
                          list(zip(nodule_ids, probabilities(labels, rng, skill), strict=True)))

    add(Example("Les Voxelistes", "nodules", "nodules.csv", "a strong model", "scored"),
        probs_csv(0.95))
    french = probabilities(labels, rng, 0.85)
    add(Example("Bayesian Baguettes", "nodules", "nodules-decimal-comma.csv",
                "saved by French Excel: semicolons and decimal commas — this is fine", "scored"),
        ("id;probabilité\r\n" + "".join(f"{i};{str(p).replace('.', ',')}\r\n"
                                        for i, p in zip(nodule_ids, french, strict=True))
         ).encode("cp1252"))
    add(Example("Dice Rollers", "nodules", "nodules.csv", "a fair model", "scored"),
        probs_csv(0.6))
    add(Example("Hounsfield Harriers", "nodules", "nodules.xlsx",
                "an Excel workbook without a header row", "scored"),
        _xlsx(list(zip(nodule_ids, probabilities(labels, rng, 0.7), strict=True))))
    add(Example("Croissant Convolution", "nodules", "nodules.csv", "a weak model", "scored"),
        probs_csv(0.3))
    missing = list(zip(nodule_ids, probabilities(labels, rng, 1.5), strict=True))
    add(Example("Gradient Gargoyles", "nodules", "nodules-missing-ids.csv",
                f"three exams left out ({', '.join(i for i, _ in missing[-3:])})",
                "invalid", ("missing_id",)),
        _csv_bytes(("id", "probability"), missing[:-3]))
    over = list(zip(nodule_ids, probabilities(labels, rng, 1.5), strict=True))
    over[4] = (over[4][0], 1.3)
    add(Example("Gradient Gargoyles", "nodules", "nodules-probability-1.3.csv",
                f"a probability of 1.3 for {over[4][0]} (a logit rescaled by hand)",
                "invalid", ("out_of_range",)),
        _csv_bytes(("id", "probability"), over))

    # EDSS: predicted score at two years, 0–10.
    def edss_csv(sd: float, bias: float = 0.0) -> bytes:
        return _csv_bytes(("id", "edss"),
                          list(zip(edss_ids, edss_guesses(edss, rng, sd, bias), strict=True)))

    add(Example("Les Voxelistes", "edss", "edss.csv", "a good model", "scored"), edss_csv(0.8))
    add(Example("Bayesian Baguettes", "edss", "edss.csv", "a fair model", "scored"),
        edss_csv(1.1, 0.2))
    add(Example("Dice Rollers", "edss", "edss-first-try.csv",
                "an early, poor try (upload it before edss.csv to see the board move)",
                "scored"), edss_csv(2.4, 0.8))
    add(Example("Dice Rollers", "edss", "edss.csv", "the improved model", "scored"),
        edss_csv(1.3))
    add(Example("Sagittal Sunrise", "edss", "edss.csv", "a weak model", "scored"),
        edss_csv(1.9, -0.4))
    indexed = edss_guesses(edss, rng, 1.2)
    add(Example("Bayesian Baguettes", "edss", "edss-with-index.csv",
                "written by pandas' to_csv without index=False: a third column of row numbers",
                "invalid", ("too_many_columns",)),
        _csv_bytes(("", "id", "edss"),
                   [(str(n), i, v) for n, (i, v) in
                    enumerate(zip(edss_ids, indexed, strict=True))]))
    add(Example("Pixel Pétanque", "edss", "edss.xls",
                "'Export to Excel' from a web tool: an HTML table named .xls",
                "invalid", ("unsupported_format",)),
        _html_table(list(zip(edss_ids, edss_guesses(edss, rng, 1.0), strict=True))))
    return examples


def _write_nodule_task(truth: Path, release: Path, submissions: Path, rng: Rng
                       ) -> list[Example]:
    """The seed's nodule question in full (kind `nodule-task`): 3-D CT exams released as DICOM
    series, their nodule masks and nodule list as truth, and each team's zip of masks,
    candidates, volumes and probabilities — good ones, and the mistakes teams make."""
    exams = [chest_volume(f"CT3D-{n:03d}", rng) for n in range(1, NODULE_TASK_EXAMS + 1)]
    for folder in (truth / "images", truth / "masks"):
        folder.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[object, ...]] = []
    for exam in exams:
        (truth / "images" / f"{exam.id}.nii.gz").write_bytes(nifti(exam, exam.hu))
        (truth / "masks" / f"{exam.id}.nii.gz").write_bytes(
            nifti(exam, exam.mask.astype(np.uint8)))
        series = release / exam.id
        series.mkdir(parents=True, exist_ok=True)
        for name, data in dicom_series(exam).items():
            (series / name).write_bytes(data)
        rows += [(exam.id, *n.centre, n.diameter_mm) for n in exam.nodules]
    (truth / "nodules.csv").write_bytes(_csv_bytes(("id", "x", "y", "z", "diameter_mm"), rows))

    examples: list[Example] = []

    def add(example: Example, predictions: list[Prediction], *,
            mask: Callable[[VolumeExam, Prediction], tuple[str, bytes]] | None = None,
            candidates: Callable[[VolumeExam, Prediction], Sequence[Sequence[float]]]
            | None = None, leave_out: str = "") -> None:
        members: dict[str, bytes] = {}
        for exam, guess in zip(exams, predictions, strict=True):
            name, data = (mask(exam, guess) if mask else
                          (f"masks/{exam.id}.nii.gz", nifti(exam, guess.mask.astype(np.uint8))))
            members[name] = data
        members["candidates.csv"] = _csv_bytes(
            ("id", "x", "y", "z", "probability"),
            [(exam.id, *c) for exam, guess in zip(exams, predictions, strict=True)
             for c in (candidates(exam, guess) if candidates else guess.candidates)])
        members["volumes.csv"] = _csv_bytes(
            ("id", "volume_mm3"), [(e.id, g.volume_mm3) for e, g in zip(exams, predictions,
                                                                        strict=True)])
        members["probabilities.csv"] = _csv_bytes(
            ("id", "probability"), [(e.id, g.probability) for e, g in zip(exams, predictions,
                                                                          strict=True)])
        members.pop(leave_out, None)
        path = submissions / team_folder(example.team) / example.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_zip(members))
        examples.append(example)

    def model(skill: float, **kwargs: float) -> list[Prediction]:
        return [predict(exam, rng, skill=skill, **kwargs) for exam in exams]

    slug = "nodules-3d"
    add(Example("Les Voxelistes", slug, "nodules-3d.zip",
                "a strong model: every part, masks as NIfTI with the series' geometry",
                "scored"), model(0.9, false_positives=0.5))
    add(Example("Dice Rollers", slug, "nodules-3d.zip",
                "misses the nodules under 4 mm and proposes more false candidates", "scored"),
        model(0.6, miss_below_mm=4.0, false_positives=2.0))
    add(Example("Bayesian Baguettes", slug, "nodules-3d.zip",
                "masks saved without any orientation (identity affine) in the series' "
                "column, row, slice order: read as such, with a warning", "scored"),
        model(0.75, false_positives=1.0),
        mask=lambda e, g: (f"masks/{e.id}.nii.gz",
                           nifti(e, g.mask.astype(np.uint8), affine=False)))
    add(Example("Hounsfield Harriers", slug, "nodules-3d-voxel-candidates.zip",
                "candidates given as voxel indices instead of millimetres: scored, "
                "but hardly a nodule is found", "scored"),
        model(0.8), candidates=voxel_candidates)
    add(Example("Croissant Convolution", slug, "nodules-3d-slices-first.zip",
                "masks written by nibabel from a slices × rows × columns array with the "
                "series' affine (no transpose): the wrong shape for the exam",
                "invalid", ("wrong_shape",)),
        model(0.7),
        mask=lambda e, g: (f"masks/{e.id}.nii.gz", nifti_slices_first(e, g.mask)))
    add(Example("Gradient Gargoyles", slug, "nodules-3d-no-probabilities.zip",
                "the zip without probabilities.csv", "invalid", ("missing_part",)),
        model(0.7), leave_out="probabilities.csv")
    return examples


def team_folder(team: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", team).encode("ascii", "ignore").decode()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_name).lower().split())


def _csv_bytes(header: tuple[str, ...], rows: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _write_csv(path: Path, header: tuple[str, str], rows: Sequence[Sequence[object]]) -> None:
    path.write_bytes(_csv_bytes(header, rows))


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            # A fixed date keeps the archive the same from one run to the next.
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _xlsx(rows: list[tuple[str, float]]) -> bytes:
    from openpyxl import Workbook  # noqa: PLC0415

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _html_table(rows: list[tuple[str, float]]) -> bytes:
    cells = "".join(f"<tr><td>{i}</td><td>{v}</td></tr>" for i, v in rows)
    return (f"<html><body><table><tr><th>id</th><th>edss</th></tr>{cells}</table>"
            "</body></html>").encode()


def _teams_toml() -> str:
    blocks = []
    for name, challenges in TEAMS:
        listed = ", ".join(f'"{c}"' for c in challenges)
        blocks.append(f'\n[[teams]]\nname = "{name}"\nchallenges = [{listed}]\n')
    return "".join(blocks)


def _readme(examples: list[Example]) -> str:
    lines = [
        "# Example submissions",
        "",
        "Ready-made files to upload as each team (log in with the team's link from "
        "`podium tokens`), or to score offline with",
        "`podium score --event event.toml --challenge SLUG submissions/TEAM/FILE`.",
        "Some are good, of different quality, so the board has a spread; some carry the "
        "mistakes teams really make, and show the message a team gets.",
        "`expected.json` says the same for scripts.",
        "",
        "| file | team | challenge | what it is | expected |",
        "|---|---|---|---|---|",
    ]
    for e in examples:
        expected = "scored" if e.status == "scored" else f"invalid: {', '.join(e.codes)}"
        lines.append(f"| `{team_folder(e.team)}/{e.filename}` | {e.team} | {e.challenge} | "
                     f"{e.what} | {expected} |")
    lines += ["", "Teams registered for a challenge without a valid file here (Gradient "
              "Gargoyles for nodules, Sagittal Sunrise for sarcopenia, Pixel Pétanque for EDSS) "
              "show as N.S. in the results table unless they upload a corrected file.", ""]
    return "\n".join(lines)
