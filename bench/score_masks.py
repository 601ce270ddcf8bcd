"""Benchmark: score a 500-exam sarcopenia submission (512×512 masks) in PNG, NPY and DICOM.

Usage:  .venv/bin/python bench/score_masks.py [--exams 500] [--size 512] [--repeat 3]

Everything is generated in a temporary folder. Each variant is measured in a fresh child
process, like a scoring worker: the truth is loaded once (reported apart), then the
submission is scored; the floor is the same 500 members read from the same zip, decoded by
the bare library call and compared with a bare numpy Dice. Reports the best of --repeat runs
and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.evaluators.factory import (  # noqa: E402
    dicom_mask,
    npy_mask,
    perturb,
    png_mask,
    synthetic_slice,
    table_csv,
    write_exam,
)

VARIANTS = {"png": ".png", "npy": ".npy", "dicom": ".dcm"}
# The 2019 sarcopenia rules restrict both masks to [-29, 150] HU.
RUNS = [("png", None), ("npy", None), ("dicom", None), ("png", (-29.0, 150.0))]


def generate(folder: Path, exams: int, size: int) -> None:
    truth = folder / "truth"
    (truth / "masks").mkdir(parents=True)
    spacing = (0.75, 0.75)
    writers: dict[str, zipfile.ZipFile] = {
        v: zipfile.ZipFile(folder / f"{v}.zip", "w", zipfile.ZIP_DEFLATED) for v in VARIANTS
    }
    surfaces = {}
    # A few distinct slices, reused: generating 500 noisy 512×512 slices is the slow part.
    bank = [synthetic_slice((size, size), seed=s) for s in range(8)]
    for n in range(exams):
        exam_id = f"{n:05d}"
        hu, mask = bank[n % len(bank)]
        image = truth / "images" / f"{exam_id}.dcm"
        write_exam(image, hu, spacing, seed=n)
        (truth / "masks" / f"{exam_id}.png").write_bytes(png_mask(mask))
        predicted = perturb(mask, seed=n, flips=2000)
        writers["png"].writestr(f"masks/{exam_id}.png", png_mask(predicted))
        writers["npy"].writestr(f"masks/{exam_id}.npy", npy_mask(predicted))
        writers["dicom"].writestr(f"masks/{exam_id}.dcm", dicom_mask(image, predicted))
        surfaces[exam_id] = float(np.count_nonzero(predicted)) * spacing[0] * spacing[1]
    for writer in writers.values():
        writer.writestr("surfaces.csv", table_csv(surfaces, header=("id", "surface_mm2")))
        writer.close()


def floor_once(submission: Path, truth_masks: dict[str, np.ndarray], variant: str) -> float:
    import pydicom
    from PIL import Image

    start = time.perf_counter()
    with zipfile.ZipFile(submission) as archive:
        for info in archive.infolist():
            if not info.filename.startswith("masks/"):
                continue
            data = archive.read(info)
            exam_id = info.filename.rsplit("/", 1)[-1].split(".")[0]
            if variant == "png":
                with Image.open(io.BytesIO(data)) as image:
                    pixels = np.asarray(image)
            elif variant == "npy":
                pixels = np.load(io.BytesIO(data), allow_pickle=False)
            else:
                pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
            predicted = pixels != 0
            truth = truth_masks[exam_id]
            2.0 * np.count_nonzero(predicted & truth) / (
                np.count_nonzero(predicted) + np.count_nonzero(truth)
            )
    return time.perf_counter() - start


def child(folder: Path, variant: str, repeat: int, window: tuple[float, float] | None) -> None:
    from server.evaluators import ScoringOptions, evaluate, load_truth

    truth = folder / "truth"
    options = ScoringOptions(hu_window=window)
    start = time.perf_counter()
    loaded = load_truth("segmentation-surface", truth)
    loaded.targets(window)  # type: ignore[union-attr]
    load_s = time.perf_counter() - start
    submission = folder / f"{variant}.zip"
    scores = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = evaluate("segmentation-surface", truth, submission, options)
        scores.append(time.perf_counter() - start)
        if result.status != "scored":
            raise SystemExit(f"{variant}: {result.to_json()}")
    rss_scoring = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from PIL import Image

    truth_masks = {}
    for path in sorted((truth / "masks").iterdir()):
        with Image.open(path) as image:
            truth_masks[path.stem] = np.asarray(image) != 0
    floors = [floor_once(submission, truth_masks, variant) for _ in range(repeat)]
    pixels = sum(m.size for m in truth_masks.values())
    print(json.dumps({
        "variant": variant, "load_truth_s": load_s, "score_s": min(scores),
        "floor_s": min(floors), "zip_mb": submission.stat().st_size / 1e6,
        "pixel_mb": pixels / 1e6, "peak_rss_mb": rss_scoring,
        "dice": result.metrics["dice"],
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--window", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.repeat,
              tuple(args.window) if args.window else None)
        return
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        generate(folder, args.exams, args.size)
        print(f"generated {args.exams} exams of {args.size}×{args.size} in "
              f"{time.perf_counter() - start:.1f} s")
        # MB/s counts decoded mask pixels at one byte each (500 × 512² ≈ 131 MB).
        print(f"{'variant':12} {'zip MB':>7} {'score s':>8} {'MB/s':>7} {'floor s':>8} "
              f"{'ratio':>6} {'peak MB':>8} {'truth load s':>13}")
        for variant, window in RUNS:
            extra = ["--window", *map(str, window)] if window else []
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(folder), variant,
                 "--repeat", str(args.repeat), *extra],
                check=True, capture_output=True, text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            label = variant + (" +HU" if window else "")
            print(f"{label:12} {r['zip_mb']:7.1f} {r['score_s']:8.3f} "
                  f"{r['pixel_mb'] / r['score_s']:7.0f} {r['floor_s']:8.3f} "
                  f"{r['score_s'] / r['floor_s']:6.2f} {r['peak_rss_mb']:8.0f} "
                  f"{r['load_truth_s']:13.2f}")


if __name__ == "__main__":
    main()
