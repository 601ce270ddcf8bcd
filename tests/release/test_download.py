"""The validation-set release through the server: gating, Range/resume, sealing, the guard."""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from pathlib import Path

import pydicom
import pytest

from tests.helpers import (
    PODIUM,
    ROOT,
    AppServer,
    Client,
    ServerProcess,
    set_challenge_keys,
    wait_for,
)


def download(server: Client, slug: str, token: str,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return server.request("GET", f"/api/v1/challenges/{slug}/dataset", token, None, headers)


def test_gating_by_role_registration_and_state(server: AppServer) -> None:
    tokens = server.tokens()
    status, _, raw = download(server, "nodules", tokens["Lumbar Lab"])
    assert status == 403 and b"not_started" in raw
    status, _, raw = download(server, "nodules", tokens["Pixel Anatomy"])  # not registered
    assert status == 403 and b"not_registered" in raw
    for role in ("jury", "organizer"):
        assert download(server, "nodules", tokens[role])[0] == 403
    assert download(server, "nodules", "")[0] == 401
    _, before = server.json("GET", "/api/v1/challenges/nodules", tokens["Lumbar Lab"])
    release = before["release"]
    assert release["sealed"] is False and release["armed"] is True

    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    status, headers, body = download(server, "nodules", tokens["Lumbar Lab"])
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == release["sha256"] == headers["X-Content-SHA256"]
    assert len(body) == release["size"]
    archive = zipfile.ZipFile(io.BytesIO(body))
    manifest = archive.read("MANIFEST.csv").decode().splitlines()
    names = [line.split(",")[0] for line in manifest[1:]]
    assert sorted(names) == sorted(n for n in archive.namelist() if n != "MANIFEST.csv")
    for line in manifest[1:]:
        name, size, digest = line.split(",")
        data = archive.read(name)
        assert len(data) == int(size) and hashlib.sha256(data).hexdigest() == digest
        assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED  # DICOM is stored

    # The organizer console counts the download (logged once the last byte has gone out).
    wait_for(lambda: b'data-count="downloaded">1<' in server.request(
        "GET", "/organizer", tokens["organizer"])[2], what="the download counted")


def test_range_and_if_range_resume_byte_exactly(server: AppServer) -> None:
    tokens = server.tokens()
    server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
    status, headers, whole = download(server, "nodules", tokens["Nodule Hunters"])
    etag = headers["Etag"]
    cut = len(whole) // 3
    status, headers, first = download(server, "nodules", tokens["Nodule Hunters"],
                                      {"Range": f"bytes=0-{cut - 1}"})
    assert status == 206 and first == whole[:cut]
    status, headers, rest = download(server, "nodules", tokens["Nodule Hunters"],
                                     {"Range": f"bytes={cut}-", "If-Range": etag})
    assert status == 206 and headers["Content-Range"] == f"bytes {cut}-{len(whole) - 1}/" \
        f"{len(whole)}"
    assert hashlib.sha256(first + rest).hexdigest() == hashlib.sha256(whole).hexdigest()
    # A stale validator gets the whole file again rather than a wrong splice.
    status, _, again = download(server, "nodules", tokens["Nodule Hunters"],
                                {"Range": f"bytes={cut}-", "If-Range": '"stale"'})
    assert status == 200 and again == whole


def test_a_sealed_release_downloads_early_and_opens_with_the_key_revealed_at_start(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    import pyzipper

    set_challenge_keys(example_event, "edss", sealed=True)
    server = AppServer(example_event, tmp_path / "data", database_url, scoring_workers=0).start()
    try:
        tokens = server.tokens()
        team = tokens["Myelin Minds"]
        status, _, sealed = download(server, "edss", team)
        assert status == 200  # before the start: sealed archives may travel early
        _, seen = server.json("GET", "/api/v1/challenges/edss", team)
        assert seen["release"]["sealed"] is True and seen["release"]["key"] is None
        with pyzipper.AESZipFile(io.BytesIO(sealed)) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dcm"))
            with pytest.raises(RuntimeError):
                archive.read(name)  # no key yet

        server.json("POST", "/api/v1/challenges/edss/start", tokens["organizer"], {})
        _, started = server.json("GET", "/api/v1/challenges/edss", team)
        key = started["release"]["key"]
        assert key
        _, other = server.json("GET", "/api/v1/challenges/edss", tokens["Nodule Hunters"])
        assert other["release"]["key"] is None  # not registered for edss
        with pyzipper.AESZipFile(io.BytesIO(sealed)) as archive:
            archive.setpassword(key.encode())
            data = archive.read(name)
        assert pydicom.dcmread(io.BytesIO(data)).Modality == "CT"

        path = tmp_path / "edss.zip"
        path.write_bytes(sealed)
        opened = subprocess.run([*PODIUM, "unseal", str(path), key, "--out",
                                 str(tmp_path / "opened")], capture_output=True, text=True,
                                cwd=ROOT)
        assert opened.returncode == 0, opened.stderr
        assert (tmp_path / "opened" / name).read_bytes() == data
    finally:
        server.stop()


@pytest.mark.slow  # reads a server process's log, then restarts it with --allow-release
def test_a_release_with_identifying_data_is_held_back(example_event: Path, database_url: str,
                                                      tmp_path: Path) -> None:
    dicom = sorted((example_event.parent / "release" / "nodules").glob("*.dcm"))[0]
    dataset = pydicom.dcmread(dicom)
    dataset.PatientName = "DOE^JANE"
    dataset.save_as(dicom)
    server = ServerProcess(example_event, tmp_path / "data", database_url).start()
    try:
        tokens = server.tokens()
        server.json("POST", "/api/v1/challenges/nodules/start", tokens["organizer"], {})
        status, _, raw = download(server, "nodules", tokens["Lumbar Lab"])
        assert status == 403 and b"release_blocked" in raw
        assert "PatientName" in server.stderr()
    finally:
        server.stop()
    server.extra_args = ["--allow-release", "checked by the data officer: synthetic name"]
    server.start()
    try:
        status, _, _ = download(server, "nodules", tokens["Lumbar Lab"])
        assert status == 200
        log = (tmp_path / "data" / "release-overrides.log").read_text()
        assert "checked by the data officer" in log
    finally:
        server.stop()
