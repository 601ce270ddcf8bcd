"""Benchmark: score a segmentation-3d submission of CT-sized label volumes (NIfTI gz).

Usage:  .venv/bin/python bench/score_volumes.py [--exams 100] [--size 512x512x200]
                                                [--repeat 1] [--medpy-exams 2]

Each exam has an organ-sized structure (label 1, a lung's size at 512×512×200) and a
nodule-sized one (label 2, 10 mm across); the prediction moves and resizes both a little. The
generated data is cached under the system's temporary folder (podium-bench-volumes/), so a
second run starts at once; a few distinct volumes are reused under every exam id (generating
and compressing 100 volumes of 52 M voxels is the slow part, scoring reads each one anyway).

Each measurement runs in a fresh child process, like a scoring worker: the truth is loaded
once (reported apart), then the zip is scored with evaluate() — full (Dice, volumes, NSD and
HD95) and with the distances left out (Dice and volumes only). The floor, in the same child:
the same members read from the same zip, decoded by nibabel (`Nifti1Image.from_bytes` after
gzip) and compared with a bare numpy Dice per label on the whole volume, against the truth
decoded the same way. Peak memory is
tracemalloc's peak over one scoring (after a worker's one-time set-up: the surfel table,
scipy's k-d tree module) (numpy and zlib buffers included), given in volumes (one
volume = the exam's voxels at one byte, the mask as teams write it), and the child's maximum
RSS. MedPy (`dc` + `hd95` per label, on the whole volume) is timed on the first
--medpy-exams exams beside it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KIND = "segmentation-3d"
BANK = 4
SPACING = (0.7, 0.7, 1.25)


def affine() -> np.ndarray:
    return np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])


def ellipsoid_into(out: np.ndarray, label: int, centre: np.ndarray, radii: np.ndarray) -> None:
    low = np.maximum(np.floor(centre - radii).astype(int), 0)
    high = np.minimum(np.ceil(centre + radii).astype(int) + 1, out.shape)
    i, j, k = np.ogrid[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    inside = (((i - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2
              + ((k - centre[2]) / radii[2]) ** 2) <= 1.0
    region = out[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    region[inside] = label


def phantom(shape: tuple[int, int, int], seed: int, predicted: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = np.array(shape, dtype=np.float64)
    organ_c = size * np.array([0.42, 0.5, 0.5]) + rng.uniform(-3, 3, 3)
    organ_r = size * np.array([0.18, 0.27, 0.33]) * rng.uniform(0.95, 1.05, 3)
    nodule_c = size * np.array([0.72, 0.45, 0.55]) + rng.uniform(-5, 5, 3)
    nodule_r = 5.0 / np.array(SPACING) * rng.uniform(0.9, 1.1, 3)  # 10 mm across
    if predicted:  # a good model: a voxel or two off, a few per cent too large or small
        organ_c = organ_c + rng.uniform(-1.5, 1.5, 3)
        organ_r = organ_r * rng.uniform(0.97, 1.03, 3)
        nodule_c = nodule_c + rng.uniform(-1, 1, 3)
        nodule_r = nodule_r * rng.uniform(0.85, 1.1, 3)
    out = np.zeros(shape, dtype=np.uint8)
    ellipsoid_into(out, 1, organ_c, organ_r)
    ellipsoid_into(out, 2, nodule_c, nodule_r)
    return out


def nifti_gz(volume: np.ndarray) -> bytes:
    import nibabel as nib

    # nibabel writes .nii.gz at compression level 1; so does this.
    return gzip.compress(nib.Nifti1Image(volume, affine()).to_bytes(), compresslevel=1,
                         mtime=0)


def generate(folder: Path, exams: int, shape: tuple[int, int, int]) -> None:
    done = folder / "done"
    if done.exists():
        return
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "truth" / "images").mkdir(parents=True)
    (folder / "truth" / "masks").mkdir()
    (folder / "bank").mkdir()
    # The exam images' headers are all the truth reads of them: an empty CT of the right
    # geometry keeps the cache small.
    image = nifti_gz(np.zeros(shape, dtype=np.uint8))
    for b in range(BANK):
        (folder / "bank" / f"truth{b}.nii.gz").write_bytes(
            nifti_gz(phantom(shape, b, predicted=False)))
        (folder / "bank" / f"pred{b}.nii.gz").write_bytes(
            nifti_gz(phantom(shape, b, predicted=True)))
    with zipfile.ZipFile(folder / "submission.zip", "w", zipfile.ZIP_STORED) as archive:
        for n in range(exams):
            exam_id = f"{n:04d}"
            (folder / "truth" / "images" / f"{exam_id}.nii.gz").write_bytes(image)
            os.link(folder / "bank" / f"truth{n % BANK}.nii.gz",
                    folder / "truth" / "masks" / f"{exam_id}.nii.gz")
            archive.write(folder / "bank" / f"pred{n % BANK}.nii.gz", f"masks/{exam_id}.nii.gz")
    done.touch()


def floor_once(folder: Path, truths: list[np.ndarray]) -> float:
    import nibabel as nib

    start = time.perf_counter()
    with zipfile.ZipFile(folder / "submission.zip") as archive:
        for n, info in enumerate(archive.infolist()):
            image = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(info)))
            predicted = np.asanyarray(image.dataobj)
            truth = truths[n % BANK]
            for label in (1, 2):
                p, t = predicted == label, truth == label
                2.0 * np.count_nonzero(p & t) / (np.count_nonzero(p) + np.count_nonzero(t))
    return time.perf_counter() - start


def child(folder: Path, repeat: int, medpy_exams: int) -> None:
    from server.evaluators import ScoringOptions, evaluate, load_truth, segmentation3d
    from server.evaluators.distances import Agreement

    truth = folder / "truth"
    # What a scoring worker pays once, at its first 3-D file: the marching-cubes table and
    # scipy's k-d tree module.
    import scipy.spatial  # noqa: F401

    from server.evaluators.distances import surfel_areas
    surfel_areas((1.0, 1.0, 1.0))
    start = time.perf_counter()
    load_truth(KIND, truth)
    load_s = time.perf_counter() - start
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    submission = folder / "submission.zip"
    options = ScoringOptions(tolerance_mm=1.0)

    def timed() -> tuple[float, dict[str, float]]:
        best, metrics = float("inf"), {}
        for _ in range(repeat):
            begin = time.perf_counter()
            result = evaluate(KIND, truth, submission, options)
            best = min(best, time.perf_counter() - begin)
            if result.status != "scored":
                raise SystemExit(json.dumps(result.to_json()))
            metrics = dict(result.metrics)
        return best, metrics

    full_s, metrics = timed()
    rss_scored = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    evaluate(KIND, truth, submission, options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    real_compare = segmentation3d.compare

    def dice_only(t: np.ndarray, p: np.ndarray, *_: object, **__: object) -> Agreement:
        tv, pv = int(np.count_nonzero(t)), int(np.count_nonzero(p))
        dice = 1.0 if tv + pv == 0 else 2.0 * np.count_nonzero(t & p) / (tv + pv)
        return Agreement(dice, 0.0, 0.0, pv, tv)

    segmentation3d.compare = dice_only  # type: ignore[assignment]
    dice_s, _ = timed()
    segmentation3d.compare = real_compare
    import nibabel as nib

    # Decoded by nibabel as the submission is (a NIfTI array is in Fortran order: a truth in
    # C order would make numpy compare the two voxel by voxel across strides, 30 times slower).
    truths = [np.asanyarray(nib.load(folder / "bank" / f"truth{b}.nii.gz").dataobj)
              for b in range(BANK)]
    floor_s = min(floor_once(folder, truths) for _ in range(repeat))
    medpy_s = medpy_per_exam(folder, truths, medpy_exams)
    with zipfile.ZipFile(submission) as archive:
        exams = len(archive.infolist())
    voxels = int(truths[0].size)
    print(json.dumps({
        "exams": exams, "voxels": voxels, "load_truth_s": load_s, "score_s": full_s,
        "dice_volume_s": dice_s, "floor_s": floor_s, "medpy_per_exam_s": medpy_s,
        "peak_traced_mb": peak / 1e6, "peak_volumes": peak / voxels,
        "rss_after_truth_mb": rss_loaded, "rss_after_scoring_mb": rss_scored,
        "zip_mb": submission.stat().st_size / 1e6, "metrics": metrics,
    }))


def medpy_per_exam(folder: Path, truths: list[np.ndarray], exams: int) -> float | None:
    if exams <= 0:
        return None
    import nibabel as nib
    from medpy.metric.binary import dc, hd95

    start = time.perf_counter()
    with zipfile.ZipFile(folder / "submission.zip") as archive:
        for n, info in enumerate(archive.infolist()[:exams]):
            image = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(info)))
            predicted = np.asanyarray(image.dataobj)
            for label in (1, 2):
                p, t = predicted == label, truths[n % BANK] == label
                dc(p, t)
                hd95(p, t, SPACING)
    return (time.perf_counter() - start) / exams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=100)
    parser.add_argument("--size", default="512x512x200", help="voxels, e.g. 256x256x100")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--medpy-exams", type=int, default=2)
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.repeat, args.medpy_exams)
        return
    a, b, c = (int(v) for v in args.size.lower().split("x"))
    folder = Path(tempfile.gettempdir()) / "podium-bench-volumes" / f"{args.exams}-{a}x{b}x{c}"
    start = time.perf_counter()
    generate(folder, args.exams, (a, b, c))
    print(f"{args.exams} exams of {a}×{b}×{c} voxels ready in {time.perf_counter() - start:.1f} s"
          f" ({folder})")
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--repeat",
                          str(args.repeat), "--medpy-exams", str(args.medpy_exams)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    n = r["exams"]
    print(f"truth loaded once in {r['load_truth_s']:.1f} s; zip {r['zip_mb']:.1f} MB")
    print(f"{'':28} {'total s':>8} {'per exam s':>10} {'/ floor':>8}")
    rows = [("floor: nibabel + numpy Dice", r["floor_s"]),
            ("Dice + volumes", r["dice_volume_s"]),
            ("Dice + volumes + NSD + HD95", r["score_s"])]
    for label, seconds in rows:
        print(f"{label:28} {seconds:8.2f} {seconds / n:10.3f} {seconds / r['floor_s']:8.2f}")
    if r["medpy_per_exam_s"] is not None:
        medpy = r["medpy_per_exam_s"]
        print(f"{'MedPy dc + hd95':28} {medpy * n:8.1f} {medpy:10.3f} "
              f"{medpy * n / r['floor_s']:8.2f}  (timed on {args.medpy_exams} exams)")
    print(f"peak memory while scoring: {r['peak_traced_mb']:.0f} MB traced = "
          f"{r['peak_volumes']:.2f} volumes of {r['voxels'] / 1e6:.1f} M voxels; max RSS "
          f"{r['rss_after_truth_mb']:.0f} MB after loading the truth, "
          f"{r['rss_after_scoring_mb']:.0f} MB after scoring")
    print("metrics:", json.dumps({k: round(v, 4) for k, v in r["metrics"].items()}))


if __name__ == "__main__":
    main()
