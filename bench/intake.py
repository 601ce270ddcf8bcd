"""Benchmark: a center's PACS sends 20 CT series of 300 slices to the DICOM node.

Usage:  .venv/bin/python bench/intake.py [--series 20] [--slices 300] [--rows 256]
                                         [--quiet 1] [--keep]

Everything is generated in a temporary folder: `--series` CT studies of one series each
(Siemens, kernel B70f, 1 mm slices: the nodules question's criteria), `--slices` slices of
`--rows`² 16-bit pixels, written by pydicom. `podium serve` runs the example event
(examples/jfr2019) as a subprocess with its embedded PostgreSQL and `--dicom-port`; the center
CHU de Lyon (AE title CHULYON) sends the studies one after another with DCMTK's `storescu`,
one association per study, as a PACS forwards a worklist. The bench then polls the exams
(`GET /api/v1/center/exams`) until every one is de-identified and checked.

The **floor** runs first, on the same files with the same sender: a bare pynetdicom Storage
SCP in a child process (the documented handler: the encoded dataset written to a file, no
fsync), then pydicom reading each received file and writing it again (`dcmread`, `save_as`):
the least any receiver that de-identifies must do. A second floor fsyncs each file and its
folder before answering, as Podium does (nothing acknowledged may be lost). Reported, for
Podium and the floors: MB/s and slices/s received (the send phase) and end to end (from the
first C-STORE to the last exam checked, against the floor's receive + read/write), and their
ratios; the target is ≥ 0.70.

The server's memory (RSS of the server process and its children, from /proc) is sampled every
0.25 s: first while a warm-up of 2 studies of `--slices / 10` slices goes through, then during
the run; its peak must not grow with the series size (the run's peak over the warm-up's is
reported). The event loop's worst lag (`/healthz` `loop_lag_ms`, the worst of its last 10 s)
is read every second.

Exits 1 when a check fails: an instance not acknowledged, an exam missing, not de-identified
or not checked.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import EXAMPLE_DIR, ServerProcess  # noqa: E402
from tests.inclusion.test_node import free_port  # noqa: E402

CENTER, AE_TITLE = "CHU de Lyon", "CHULYON"
WEB_CENTER, WEB_QUESTION = "CHU de Bordeaux", "nodules-3d"
WEB_CHUNK = 8 * 1024 * 1024
DONE = {"checked", "review", "kept", "excluded"}
TARGET = 0.70

FLOOR_SCP = """
import os, sys
from pathlib import Path
from pynetdicom import AE, StoragePresentationContexts, evt, ALL_TRANSFER_SYNTAXES
out, durable = Path(sys.argv[1]), sys.argv[2] == "fsync"
def on_store(event):
    with open(out / (event.request.AffectedSOPInstanceUID + ".dcm"), "wb") as f:
        f.write(event.encoded_dataset())
        if durable:
            f.flush()
            os.fsync(f.fileno())
    if durable:
        d = os.open(out, os.O_RDONLY)
        os.fsync(d)
        os.close(d)
    return 0x0000
ae = AE(ae_title="PODIUM")
for cx in StoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
server = ae.start_server(("127.0.0.1", 0), block=False,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
"""


# --- the studies ----------------------------------------------------------------------------

def write_studies(folder: Path, count: int, slices: int, rows: int, tag: str,
                  rng: np.random.Generator) -> list[list[Path]]:
    bank = [rng.integers(0, 2000, (rows, rows), dtype=np.uint16).tobytes() for _ in range(8)]
    studies = []
    for s in range(count):
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        files = []
        target = folder / f"{tag}-{s:02d}"
        target.mkdir(parents=True)
        for i in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.FrameOfReferenceUID = frame
            ds.PatientID, ds.PatientName = f"BENCH-{tag}-{s}", f"Bench^Patient{s}"
            ds.PatientBirthDate, ds.StudyDate = "19500101", "20190301"
            ds.StudyDescription, ds.SeriesDescription = "THORAX", "Thorax 1.0 B70f"
            ds.InstitutionName, ds.ReferringPhysicianName = "CHU de Lyon", "Dr^Ref"
            ds.AccessionNumber, ds.StudyID = f"A{s:06d}", "1"
            ds.Modality, ds.Manufacturer = "CT", "SIEMENS"
            ds.ManufacturerModelName, ds.ConvolutionKernel = "SOMATOM Definition AS+", "B70f"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SeriesNumber, ds.InstanceNumber = 3, i + 1
            ds.SliceThickness, ds.KVP = 1.0, 120
            ds.ImagePositionPatient = [-160.0, -160.0, -float(i)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.Rows = ds.Columns = rows
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.PixelData = bank[i % len(bank)]
            path = target / f"{i:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
        studies.append(files)
    return studies


def send(port: int, studies: list[list[Path]]) -> tuple[float, int, int]:
    """Sends each study on its own association with DCMTK's storescu, as a PACS forwards
    a worklist; (seconds, instances acknowledged, sent)."""
    storescu = shutil.which("storescu")
    if storescu is None:
        raise SystemExit("DCMTK's storescu is needed (Debian package dcmtk)")
    acknowledged = sent = 0
    start = time.perf_counter()
    for files in studies:
        sent += len(files)
        done = subprocess.run([storescu, "-aet", AE_TITLE, "-aec", "PODIUM",
                               "127.0.0.1", str(port), "+sd", str(files[0].parent)],
                              capture_output=True, text=True, timeout=3600)
        if done.returncode == 0:
            acknowledged += len(files)
        else:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return time.perf_counter() - start, acknowledged, sent


def zip_study(files: list[Path], target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for f in files:
            archive.write(f, f"study/{f.name}")
    return target


def web_upload(url: str, token: str, slug: str, archives: list[Path],
               result: dict[str, Any]) -> None:
    """Each zip created, then sent in 8 MiB PATCHes at their offsets (the tus-style upload
    a center's browser makes); seconds and bytes in `result`."""
    start, sent = time.perf_counter(), 0
    for archive in archives:
        length = archive.stat().st_size
        name = base64.b64encode(archive.name.encode()).decode()
        request = urllib.request.Request(
            f"{url}/api/v1/challenges/{slug}/uploads", method="POST", data=b"",
            headers={"Authorization": f"Bearer {token}", "Upload-Length": str(length),
                     "Upload-Metadata": f"filename {name}"})
        with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310
            location = json.load(r)["location"]
        with archive.open("rb") as f:
            offset = 0
            while offset < length:
                chunk = f.read(WEB_CHUNK)
                patch = urllib.request.Request(
                    f"{url}{location}", method="PATCH", data=chunk,
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "application/offset+octet-stream",
                             "Upload-Offset": str(offset)})
                with urllib.request.urlopen(patch, timeout=600) as r:  # noqa: S310
                    offset = int(r.headers["Upload-Offset"])
        sent += length
    result.update(seconds=time.perf_counter() - start, bytes=sent)


# --- the floor ------------------------------------------------------------------------------

def run_floor(folder: Path, studies: list[list[Path]], durable: bool) -> dict[str, float]:
    received = folder / "floor-received"
    rewritten = folder / "floor-rewritten"
    received.mkdir()
    rewritten.mkdir()
    child = subprocess.Popen([sys.executable, "-c", FLOOR_SCP, str(received),
                              "fsync" if durable else "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        receive_s, acknowledged, sent = send(port, studies)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
        if child.stdout:
            child.stdout.close()
    assert acknowledged == sent, f"the floor acknowledged {acknowledged} of {sent}"
    start = time.perf_counter()
    for path in received.iterdir():
        dcmread(path).save_as(rewritten / path.name)
    rewrite_s = time.perf_counter() - start
    shutil.rmtree(received)
    shutil.rmtree(rewritten)
    return {"receive_s": receive_s, "rewrite_s": rewrite_s,
            "total_s": receive_s + rewrite_s}


# --- Podium ---------------------------------------------------------------------------------

def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(c) for c in children]
    return total / 1024


@dataclass
class Sampler:
    """RSS every 0.25 s and the loop's lag every second, in a thread, until stopped."""

    pid: int
    url: str
    rss: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.25):
            self.rss.append(tree_rss_mb(self.pid))
            n += 1
            if n % 4 == 0:
                with contextlib.suppress(OSError, ValueError):
                    with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:  # noqa: S310
                        self.lag_ms.append(float(json.load(r)["loop_lag_ms"]))


def center_exams(url: str, token: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{url}/api/v1/center/exams",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
        return list(json.load(r)["exams"])


def wait_done(url: str, token: str, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exams = center_exams(url, token)
        if len(exams) >= count and all(e["stage"] in DONE for e in exams):
            return exams
        time.sleep(0.2)
    raise SystemExit(f"not every exam was checked within {timeout:.0f} s: "
                     f"{[(e['id'], e['stage']) for e in center_exams(url, token)]}")


def run_podium(folder: Path, warmup: list[list[Path]], studies: list[list[Path]],
               web: list[Path], quiet: float) -> dict[str, Any]:
    port = free_port()
    server = ServerProcess(EXAMPLE_DIR / "event.toml", folder / "data", None,
                           extra_args=["--scoring-workers", "0", "--dicom-port", str(port),
                                       "--dicom-quiet", str(quiet)]).start()
    try:
        assert server.process is not None
        token = server.tokens()[CENTER]
        with Sampler(server.process.pid, server.url) as warm:
            send(port, warmup)
            wait_done(server.url, token, len(warmup), 600)
        uploaded: dict[str, Any] = {}
        uploader = threading.Thread(target=web_upload, args=(
            server.url, server.tokens()[WEB_CENTER], WEB_QUESTION, web, uploaded))
        with Sampler(server.process.pid, server.url) as run:
            start = time.perf_counter()
            uploader.start()
            receive_s, acknowledged, sent = send(port, studies)
            exams = wait_done(server.url, token, len(warmup) + len(studies), 1800)
            total_s = time.perf_counter() - start
            uploader.join()
            web_exams = wait_done(server.url, server.tokens()[WEB_CENTER], len(web), 1800)
    finally:
        server.stop()
    return {"receive_s": receive_s, "total_s": total_s, "acknowledged": acknowledged,
            "sent": sent, "exams": exams, "web": uploaded, "web_exams": web_exams,
            "warm_rss": max(warm.rss, default=0.0),
            "rss": run.rss, "lag_ms": warm.lag_ms + run.lag_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--web", type=int, default=4,
                        help="studies of the same size another center uploads by the web "
                             "meanwhile")
    parser.add_argument("--quiet", type=float, default=1.0,
                        help="the node's quiet period (--dicom-quiet), seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    rng = np.random.default_rng(2019)
    folder = Path(tempfile.mkdtemp(prefix="podium-intake-"))
    try:
        studies = write_studies(folder / "studies", args.series, args.slices, args.rows, "run",
                                rng)
        warmup = write_studies(folder / "studies", 2, max(20, args.slices // 10), args.rows,
                               "warm", rng)
        web_studies = write_studies(folder / "studies", args.web, args.slices, args.rows,
                                    "web", rng)
        web = [zip_study(s, folder / f"web-{n:02d}.zip") for n, s in enumerate(web_studies)]
        files = [f for s in studies for f in s]
        mb = sum(f.stat().st_size for f in files) / 1e6
        slices = len(files)
        print(f"{args.series} studies × {args.slices} slices of {args.rows}², {mb:.0f} MB; "
              f"load average {os.getloadavg()[0]:.1f}")
        floor = run_floor(folder, studies, durable=False)
        durable = run_floor(folder, studies, durable=True)
        podium = run_podium(folder, warmup, studies, web, args.quiet)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    failures = []
    if podium["acknowledged"] != podium["sent"]:
        failures.append(f"{podium['sent'] - podium['acknowledged']} instances not acknowledged")
    run_exams = [e for e in podium["exams"] if e["stage"] in DONE]
    if len(run_exams) != args.series + 2:
        failures.append(f"{len(run_exams)} exams checked of {args.series + 2}")
    for e in run_exams:
        if e["stage"] == "excluded" or e["files"] not in (args.slices, max(20, args.slices // 10)):
            failures.append(f"exam {e['id']}: {e['stage']}, {e['files']} files, "
                            f"{e['outcome']}")

    web_done = [e for e in podium["web_exams"] if e["stage"] in DONE and e["stage"] != "excluded"
                and e["files"] == args.slices]
    if len(web_done) != args.web:
        failures.append(f"{len(web_done)} web exams checked of {args.web}: "
                        f"{[(e['stage'], e['files'], e['outcome']) for e in podium['web_exams']]}")

    def row(name: str, receive_s: float, total_s: float) -> str:
        return (f"| {name} | {receive_s:.1f} | {mb / receive_s:.0f} | {slices / receive_s:.0f} "
                f"| {total_s:.1f} | {mb / total_s:.1f} | {slices / total_s:.0f} |")

    print("| | receive s | MB/s | slices/s | end to end s | MB/s | slices/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("floor (bare SCP; pydicom read + write)", floor["receive_s"], floor["total_s"]))
    print(row("floor with an fsync per instance, as Podium acknowledges", durable["receive_s"],
              durable["total_s"]))
    print(row("Podium (node; de-identified and checked)", podium["receive_s"],
              podium["total_s"]))
    receive_ratio = floor["receive_s"] / podium["receive_s"]
    total_ratio = floor["total_s"] / podium["total_s"]
    peak = max(podium["rss"], default=0.0)
    print(f"ratio to the floor: received {receive_ratio:.2f}, end to end {total_ratio:.2f} "
          f"(target ≥ {TARGET:.2f}); floor read + write alone {floor['rewrite_s']:.1f} s")
    print(f"ratio to the fsync floor: received {durable['receive_s'] / podium['receive_s']:.2f}, "
          f"end to end {durable['total_s'] / podium['total_s']:.2f}")
    print(f"server RSS: warm-up peak {podium['warm_rss']:.0f} MB "
          f"({max(20, args.slices // 10)}-slice studies), run peak {peak:.0f} MB "
          f"({args.slices}-slice studies): {peak / podium['warm_rss']:.2f}×")
    if podium["web"]:
        print(f"meanwhile by the web: {args.web} zips, {podium['web']['bytes'] / 1e6:.0f} MB in "
              f"{podium['web']['seconds']:.1f} s "
              f"({podium['web']['bytes'] / 1e6 / podium['web']['seconds']:.0f} MB/s)")
    print(f"event loop: worst lag {max(podium['lag_ms'], default=0.0):.0f} ms "
          f"({len(podium['lag_ms'])} readings)")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
