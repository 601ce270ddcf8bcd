"""`podium demo`'s months before the final day, filled on start: the centers' exams already in,
graded, split, teams registered and the training batches out (docs/datasets.md,
docs/registration.md).

Everything goes through the functions the server itself uses, so the demo's tables are what a
real event would show:

- each center's exams (tiny synthetic DICOM series written by pydicom, 16×16 pixels, with
  their annotations: a NIfTI mask, a nodule list, a clinical row) are handed to the real
  `Intake.receive`: de-identified, checked against the question's criteria;
- the few that break a criterion on purpose are rejected by the organizers
  (`store.exams.decide`), the others graded by the event's reviewers (`store.reviews.grade`,
  double reading where the question asks it), a few graded D so that quality exclusions show;
- each question with `[challenges.splits]` is split by `dataset.cohort.make_split`, and its
  training batches made ready: the first, opened a month ago by its `opens`, packed as a
  team's first download packs it (`dataset.batch.packed_batch`), the second opened by the
  organizers (`dataset.batch.open_now`, the path of `POST .../batches/{name}/open`);
- teams register through `registration.check_application` and `insert_application`; some are
  approved (`store.registrations.approve`: their token is written, mode 0600, beside the event
  file so the banner can show their link), the others wait for the organizer.

Each step looks first at what is there, so a second start on the same data dir adds nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from server.dataset.batch import open_now, packed_batch
from server.dataset.cohort import make_split
from server.errors import AlreadyGraded
from server.event import EventSpec
from server.inclusion.pipeline import Intake, source_key
from server.registration import check_application
from server.store import batches as batch_store
from server.store import exams as exam_store
from server.store import registrations as registration_store
from server.store import reviews as review_store
from server.store import splits as split_store
from server.store.exams import Stage, ViolationState

log = logging.getLogger("podium.demo")

PIXELS = 16
SLICES = 6              # of a 3-D series: the demo's questions ask for at least 6
UID_PREFIX = "1.2.826.0.1.3680043.10.1071.9."
TOKENS_FILE = "registered-tokens.json"
ORGANIZER = "podium demo"

# (center, ae title, questions) and (reviewer, questions): the event file's [[centers]] and
# [[reviewers]] (server/demo.py writes them from these).
CENTERS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("CHU de Lyon", "CHULYON", ("sarcopenia", "nodules-3d", "edss")),
    ("CHU de Bordeaux", "CHUBDX", ("sarcopenia", "nodules-3d")),
    ("Hôpital Foch", None, ("edss",)),
)
REVIEWERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Dr Martin", ("sarcopenia", "nodules-3d")),
    ("Dr Leroy", ("nodules-3d", "edss")),
    ("Dr Petit", ("nodules-3d",)),
)


@dataclass(frozen=True)
class PlannedExam:
    """One exam a center sends: what is wrong with it on purpose (`fault`), else its grade."""

    center: str
    challenge: str
    label: str
    grade: str = "A"
    fault: str | None = None        # why the organizers reject it (a criterion broken)
    malignant: bool = False         # nodules-3d: a nodule above the malignancy rule
    edss: float = 2.0               # edss: the value at two years


def planned_exams() -> list[PlannedExam]:
    grades = "ABACBAB"
    out: list[PlannedExam] = []
    for n in range(7):
        center = ("CHU de Lyon", "CHU de Bordeaux")[n % 2]
        out.append(PlannedExam(center, "sarcopenia", f"L3-{n + 1:02d}", grades[n],
                               fault="thickness" if n == 5 else None))
    out.append(PlannedExam("CHU de Bordeaux", "sarcopenia", "L3-08", "D"))
    for n in range(8):
        center = ("CHU de Lyon", "CHU de Bordeaux")[n % 2]
        out.append(PlannedExam(center, "nodules-3d", f"CHEST-{n + 1:02d}",
                               "D" if n == 6 else grades[n % 7],
                               fault="nodules" if n == 4 else None, malignant=n % 2 == 0))
    values = (0.0, 1.5, 2.0, 3.5, 4.0, 6.0, 2.5, 1.0)
    for n in range(8):
        center = ("CHU de Lyon", "Hôpital Foch")[n % 2]
        out.append(PlannedExam(center, "edss", f"SEP-{n + 1:02d}",
                               "D" if n == 7 else grades[n % 7],
                               fault="clinical" if n == 3 else None, edss=values[n]))
    return out


# Fictional teams that register through the form; the first ones are approved by the demo.
APPLICATIONS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("Lyon Imaging Lab", ("sarcopenia", "edss"), True),
    ("Toulouse Thorax AI", ("nodules", "nodules-3d"), True),
    ("Brest Brain Works", ("edss",), True),
    ("Lille Lung Lab", ("nodules-3d",), False),
    ("Nantes Muscle Group", ("sarcopenia",), False),
)


def application_form(team: str, challenges: Sequence[str], charter_version: str) -> dict:
    """The form the public page would send for one of the demo's teams: three members, as
    the seed asked (a radiologist, a data scientist or student, a research lab or company)."""
    slug = team.lower().replace(" ", "-")
    members = [
        {"name": f"Dr {team.split()[0]} Radiologue", "email": f"radiology@{slug}.example",
         "role": "radiologist", "affiliation": f"CHU de {team.split()[0]}", "kind": "other"},
        {"name": f"{team.split()[0]} Student", "email": f"student@{slug}.example",
         "role": "data-scientist", "affiliation": f"{team} (university)", "kind": "lab"},
        {"name": f"{team.split()[0]} Engineer", "email": f"engineer@{slug}.example",
         "role": "engineer", "affiliation": "Imaging Start-up SAS", "kind": "company"},
    ]
    return {"team": team, "members": members, "challenges": list(challenges),
            "charter_accepted": True, "charter_version": charter_version}


# --- the synthetic studies ------------------------------------------------------------------

def _uid(*parts: str) -> str:
    return generate_uid(UID_PREFIX, entropy_srcs=list(parts))


def _slice(exam: PlannedExam, k: int, *, mr: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage if mr else CTImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = _uid(exam.challenge, exam.label, str(k))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = _uid(exam.challenge, exam.label, "study")
    ds.SeriesInstanceUID = _uid(exam.challenge, exam.label, "series")
    ds.FrameOfReferenceUID = _uid(exam.challenge, exam.label, "frame")
    # What a center's PACS exports: made-up identifiers the intake replaces on arrival.
    ds.PatientID = f"IPP-{exam.challenge}-{exam.label}"
    ds.PatientName = f"DEMO^{exam.label}"
    ds.PatientBirthDate, ds.PatientSex = "19600101", "F" if k % 2 else "M"
    ds.InstitutionName = exam.center
    ds.StudyDate = ds.SeriesDate = "20190314"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC-{exam.label}"
    ds.Modality = "MR" if mr else "CT"
    ds.Manufacturer = "SIEMENS"
    ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows = ds.Columns = PIXELS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    return ds


def _pixels(rng: np.random.Generator, base: int) -> bytes:
    rows, cols = np.mgrid[0:PIXELS, 0:PIXELS]
    image = np.where((rows - 7.5) ** 2 + (cols - 7.5) ** 2 < 36, base, -900)
    return (image + rng.normal(0, 10, image.shape)).astype(np.int16).tobytes()


def write_study(exam: PlannedExam, folder: Path) -> None:
    """The exam's files as a center sends them: its series and its annotation."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(exam.label.encode()))
    if exam.challenge == "sarcopenia":
        ds = _slice(exam, 0, mr=False)
        ds.SliceThickness = 0.625 if exam.fault == "thickness" else 2.5
        ds.ConvolutionKernel = "B30f"
        ds.SeriesDescription = "Abdomen L3 B30f"
        ds.ImagePositionPatient = [-5.6, -5.6, 0.0]
        ds.PixelData = _pixels(rng, 45)
        ds.save_as(folder / "IM0001", enforce_file_format=True)
        mask = np.zeros((PIXELS, PIXELS, 1), dtype=np.uint8)
        mask[3:13, 4:12, 0] = 1
        nib.save(nib.Nifti1Image(mask, np.eye(4)), str(folder / "muscle.nii.gz"))
        return
    mr = exam.challenge == "edss"
    thickness = 1.0
    for k in range(SLICES):
        ds = _slice(exam, k, mr=mr)
        ds.SliceThickness = thickness
        ds.ImagePositionPatient = [-5.6, -5.6, k * thickness]
        if mr:
            ds.MRAcquisitionType = "3D"
            ds.SeriesDescription = "3D FLAIR SPACE"
            ds.InversionTime = 1800
        else:
            ds.ConvolutionKernel = "B70f"
            ds.SeriesDescription = "Thorax 1.0 B70f"
        ds.PixelData = _pixels(rng, 400 if mr else 40)
        ds.save_as(folder / f"IM{k + 1:04d}", enforce_file_format=True)
    if mr:
        value = 12.0 if exam.fault == "clinical" else exam.edss
        (folder / "clinical.csv").write_text(
            f"age,sex,exam_date,edss_2y\n{34 + len(exam.label)},F,2019-03-14,{value}\n",
            encoding="utf-8")
        return
    count = 7 if exam.fault == "nodules" else 1 + (exam.label[-1] in "37")
    lines = ["x,y,z,diameter_mm,volume_mm3"]
    for i in range(count):
        diameter = 9.0 if exam.malignant and i == 0 else 4.0
        volume = 380.0 if exam.malignant and i == 0 else 30.0
        lines.append(f"{-3 + i:.1f},{2 - i * 0.5:.1f},{1 + i:.1f},{diameter},{volume}")
    (folder / "nodules.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- the path, step by step -----------------------------------------------------------------

async def prepare(database_url: str, event: EventSpec, data_dir: Path) -> dict[str, str]:
    """`podium demo`'s start before serving: the database migrated and loaded with the event
    as the server loads it, then filled (`fill`). Returns the registered teams' tokens."""
    from server.access import ensure_tokens
    from server.database import create_pool, migrate
    from server.loader import load_event

    tokens_file = event.path.parent / TOKENS_FILE
    pool = await create_pool(database_url, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await load_event(conn, event, ensure_tokens(event, data_dir))
        await fill(pool, event, data_dir, tokens_file=tokens_file)
    finally:
        await pool.close()
    return registered_tokens(tokens_file)


async def fill(pool: asyncpg.Pool, event: EventSpec, data_dir: Path, *,
               tokens_file: Path) -> None:
    """Fills the demo's database up to the final day (docs above); adds nothing already
    there."""
    intake = Intake(pool, event, data_dir, workers=2)
    await intake.start()
    try:
        await _send_exams(pool, intake, event, data_dir)
        await intake.idle()
    finally:
        await intake.close()
    async with pool.acquire() as conn:
        await _decide_faults(conn)
        await _grade(conn, event)
        for challenge in event.challenges:
            if challenge.splits is not None and await split_store.current(
                    conn, challenge.slug) is None:
                await make_split(conn, challenge, data_dir, by=ORGANIZER)
        await _register(conn, event, tokens_file)
    await _open_batches(pool, event, data_dir)


async def _send_exams(pool: asyncpg.Pool, intake: Intake, event: EventSpec,
                      data_dir: Path) -> None:
    questions = {c.slug for c in event.challenges if c.inclusion is not None}
    staging = data_dir / "demo-centers"
    shutil.rmtree(staging, ignore_errors=True)
    async with pool.acquire() as conn:
        centers = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM center")}
        known = {r["source_key"] for r in await conn.fetch("SELECT source_key FROM exam")}
    for exam in planned_exams():
        if exam.challenge not in questions or exam.center not in centers:
            continue
        center_id = centers[exam.center]
        key = source_key(intake.keys, center_id, _uid(exam.challenge, exam.label, "study"))
        if key in known:
            continue
        folder = staging / exam.label
        await asyncio.to_thread(write_study, exam, folder)
        await intake.receive(center_id=center_id, challenge=exam.challenge, channel="web",
                             label=f"{exam.label}.zip", source_key=key, folder=folder)
    shutil.rmtree(staging, ignore_errors=True)


def _plan_of(label: str) -> PlannedExam | None:
    stem = label.removesuffix(".zip")
    return next((e for e in planned_exams() if e.label == stem), None)


async def _decide_faults(conn: asyncpg.Connection) -> None:
    """The organizers reject the exams that break a criterion on purpose (and accept a
    violation the demo did not plan, so that nothing is left stuck)."""
    waiting = await exam_store.exams(conn, stage=Stage.CHECKED, limit=1000)
    findings = await exam_store.findings(conn, [e.id for e in waiting])
    for exam in waiting:
        plan = _plan_of(exam.label)
        for finding in findings.get(exam.id, []):
            if finding.severity != "violation" or finding.state not in (
                    ViolationState.OPEN, ViolationState.NOTIFIED):
                continue
            if plan is not None and plan.fault is not None:
                await exam_store.decide(conn, finding.id, ViolationState.REJECTED,
                                        "outside the question's criteria", ORGANIZER)
                break
            await exam_store.decide(conn, finding.id, ViolationState.ACCEPTED,
                                    "checked by the organizers", ORGANIZER)


async def _grade(conn: asyncpg.Connection, event: EventSpec) -> None:
    reviewers = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM reviewer")}
    graders = {c.slug: [reviewers[r.name] for r in event.reviewers
                        if c.slug in r.challenges and r.name in reviewers]
               for c in event.challenges}
    for exam in await exam_store.exams(conn, stage=Stage.REVIEW, limit=1000):
        plan = _plan_of(exam.label)
        grade = plan.grade if plan is not None else "B"
        for reviewer_id in graders.get(exam.challenge, []):
            try:
                outcome = await review_store.grade(
                    conn, exam.id, reviewer_id, grade,
                    "" if grade in "AB" else "contours to be checked on a few slices")
            except AlreadyGraded:
                continue
            if outcome.stage is not Stage.REVIEW:
                break


async def _register(conn: asyncpg.Connection, event: EventSpec, tokens_file: Path) -> None:
    rules = event.registration
    if rules is None:
        return
    questions = [c.slug for c in event.challenges]
    charter = await asyncio.to_thread(rules.charter.read_text, encoding="utf-8")
    standing = {r["team_name"]: r["id"] for r in await registration_store.applications(conn)}
    tokens = registered_tokens(tokens_file)
    for team, chosen, approved in APPLICATIONS:
        if team in standing:
            continue
        application = check_application(application_form(team, chosen, rules.charter_version),
                                        rules, questions)
        ident = await registration_store.insert_application(conn, application, charter)
        if approved:
            _, token = await registration_store.approve(conn, ident, ORGANIZER)
            tokens[team] = token
            _write_tokens(tokens_file, tokens)   # at once: the token is shown only once


async def _open_batches(pool: asyncpg.Pool, event: EventSpec, data_dir: Path) -> None:
    """Each split question's training batches: one whose `opens` is past is packed (as the
    first team asking for it would have it packed); one without `opens` is opened by the
    organizers, through the path of the datasets view's "Open now…"."""
    for challenge in event.challenges:
        if challenge.splits is None:
            continue
        async with pool.acquire() as conn:
            if await split_store.current(conn, challenge.slug) is None:
                continue
            now = await batch_store.now(conn)
            packed = await batch_store.packed(conn, challenge.slug)
        for spec in challenge.batches:
            done = packed.get(spec.name)
            if spec.opens is None and (done is None or done.opened_at is None):
                await open_now(pool, challenge, spec, data_dir, ORGANIZER)
            elif done is None and spec.opens is not None and spec.opens <= now:
                await packed_batch(pool, challenge, spec, data_dir)


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(tokens, out, indent=2, ensure_ascii=False)
    os.replace(partial, path)


def registered_tokens(path: Path) -> dict[str, str]:
    """The tokens the demo's approvals issued, by team (for the banner)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data.items()}


# --- the event file's part before the final day ---------------------------------------------

CHARTER_VERSION = "2019-1"

CHARTER = """\
# Ethical charter

Every member of a team accepts this charter when the team registers.

1. The examinations are used for this data challenge only: no copy is kept or shared once
   the challenge is over, and no attempt is made to find out whose examinations they are.
2. The data stay on the team's own machines; nothing is sent to a service outside the team.
3. The team's results are its own work; the methods are described to the jury on request.
4. The inclusion centers and the French Society of Radiology are acknowledged in any
   publication using the data.
"""

PAGES: dict[str, str] = {
    "questions.md": """\
# The questions

Three questions, each asked on examinations sent by French inclusion centers, de-identified
and graded by experts before any team sees them:

- **Sarcopenia**: the muscle surface at L3 on one axial CT slice (soft filter, slice thickness
  1.25 to 7 mm), as a mask.
- **Pulmonary nodules**: on a 3-D chest CT (hard filter, slices under 1.25 mm), find the 1 to 5
  nodules, segment them, measure their volume and say which are probably malignant.
- **Multiple sclerosis**: the EDSS at two years from a FLAIR MRI, with age, sex and exam date.

A team is multidisciplinary: at least one radiologist, one engineering or data-science
student, and a research lab or a company among its members; 3 to 15 members.
""",
    "timeline.md": """\
# Timeline

- **Registration**: open until the date above; the organizers approve each team and send its
  link.
- **Training data**: released in two batches to the registered teams, each set's exams with
  their annotations.
- **Validation set**: released the day before the final, without its annotations.
- **Final day**: the test data at the start of each question's session; the board is shown
  live, the results at the closing ceremony.
""",
}


def registration_toml(opens: str, closes: str) -> str:
    """The `[registration]` table with the seed's composition rule, and the event's
    `[[centers]]` and `[[reviewers]]`."""
    pages = ", ".join(f'"registration/{name}"' for name in PAGES)
    lines = [
        "",
        "# Before the final day: teams register on /register (docs/registration.md), the",
        "# inclusion centers send their exams and the experts grade them.",
        "[registration]",
        f"opens = {opens}",
        f"closes = {closes}",
        "min_members = 3",
        "max_members = 15",
        'required_roles = ["radiologist", "data-scientist"]',
        'required_affiliations = ["lab", "company"]',
        'charter = "registration/charter.md"',
        f'charter_version = "{CHARTER_VERSION}"',
        f"pages = [{pages}]",
    ]
    for name, ae_title, questions in CENTERS:
        listed = ", ".join(f'"{q}"' for q in questions)
        lines += ["", "[[centers]]", f'name = "{name}"', f"challenges = [{listed}]"]
        if ae_title:
            lines.append(f'ae_title = "{ae_title}"')
    for name, questions in REVIEWERS:
        listed = ", ".join(f'"{q}"' for q in questions)
        lines += ["", "[[reviewers]]", f'name = "{name}"', f"challenges = [{listed}]"]
    return "\n".join(lines) + "\n"


def write_registration_pages(target: Path) -> None:
    folder = target / "registration"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "charter.md").write_text(CHARTER, encoding="utf-8")
    for name, text in PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
