"""server/inclusion/upload.py: a center's resumable web upload over real HTTP — chunks, a
wrong-offset retry, HEAD and GET, every refusal; the zip unpacked safely (traversal, links,
bombs, entry counts, junk); and a server process killed mid-upload, restarted, resumed:
nothing acknowledged lost, no exam until the last byte."""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.errors import BadArchive
from server.inclusion.pipeline import EXAMS
from server.inclusion.upload import UNPACKED, UPLOADS, Limits, study_uid_of, unpack
from server.keys import CONFIG, INTAKE
from tests.helpers import AppServer, ServerProcess, wait_for
from tests.inclusion.test_pipeline import intake_server, nifti_mask, write_study

__all__ = ["intake_server"]  # the module's server, shared with test_pipeline's fixture

LYON = "CHU de Lyon"


def exam_zip(tmp_path: Path, name: str, **study: Any) -> bytes:
    """A study as a center zips it: in a folder of its own, with its mask and macOS junk."""
    written = write_study(tmp_path / name, **study)
    nifti_mask(written.folder / "mask.nii.gz")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(written.folder.iterdir()):
            archive.write(path, f"{name}/DICOM/{path.name}" if path.name.startswith("IM")
                          else f"{name}/{path.name}")
        archive.writestr(f"__MACOSX/{name}/._IM0000", b"\x00\x05\x16\x07junk")
        archive.writestr(f"{name}/.DS_Store", b"junk")
    return buffer.getvalue()


def create(server: Any, token: str, length: int, slug: str = "sarcopenia",
           name: str = "exam-0042.zip") -> tuple[int, dict[str, str], Any]:
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    status, headers, raw = server.request("POST", f"/api/v1/challenges/{slug}/uploads", token,
                                          b"", {"Upload-Length": str(length),
                                                "Upload-Metadata": metadata,
                                                "Tus-Resumable": "1.0.0"})
    return status, headers, json.loads(raw) if raw else None


def patch(server: Any, token: str, location: str, offset: int, chunk: bytes,
          content_type: str = "application/offset+octet-stream"
          ) -> tuple[int, dict[str, str], Any]:
    status, headers, raw = server.request("PATCH", location, token, chunk,
                                          {"Upload-Offset": str(offset),
                                           "Content-Type": content_type,
                                           "Tus-Resumable": "1.0.0"})
    return status, headers, json.loads(raw) if raw else None


def code(body: Any) -> str:
    return str(body["error"]["code"])


def test_an_exam_uploaded_in_chunks_with_a_wrong_offset_retry(intake_server: AppServer,
                                                              tmp_path: Path) -> None:
    server, token = intake_server, intake_server.tokens()[LYON]
    content = exam_zip(tmp_path, "exam-0042")
    third = len(content) // 3
    status, headers, body = create(server, token, len(content))
    assert status == 201, body
    location = headers["Location"]
    assert body == {"id": body["id"], "location": location, "offset": 0,
                    "length": len(content)}
    assert (headers["Upload-Offset"], headers["Tus-Resumable"]) == ("0", "1.0.0")

    status, headers, _ = patch(server, token, location, 0, content[:third])
    assert (status, headers["Upload-Offset"]) == (204, str(third))
    # The same chunk sent again (its answer was lost): refused, with the offset to go on from.
    status, _, refused = patch(server, token, location, 0, content[:third])
    assert status == 409 and code(refused) == "offset_mismatch"
    assert refused["error"]["offset"] == third and f"from byte {third}" in \
        refused["error"]["message"]
    status, headers, _ = server.request("HEAD", location, token)
    assert (status, headers["Upload-Offset"], headers["Upload-Length"]) == (
        200, str(third), str(len(content)))
    status, state = server.json("GET", location, token)
    assert (state["state"], state["offset"], state["exam_id"]) == ("receiving", third, None)

    status, _, _ = patch(server, token, location, third, content[third:2 * third])
    assert status == 204
    status, headers, _ = patch(server, token, location, 2 * third, content[2 * third:])
    assert (status, headers["Upload-Offset"]) == (204, str(len(content)))
    status, state = server.json("GET", location, token)
    assert (state["state"], state["offset"], state["name"]) == (
        "received", len(content), "exam-0042.zip")
    server.call(server.app[INTAKE].idle())
    status, exam = server.json("GET", f"/api/v1/center/exams/{state['exam_id']}", token)
    assert status == 200 and (exam["stage"], exam["channel"], exam["label"], exam["files"]) == (
        "review", "web", "exam-0042.zip", 1)
    # Nothing of the upload is left on disk but the exam's de-identified copy.
    data = Path(server.app[CONFIG].data_dir)
    assert not (data / UPLOADS / f"{state['id']}.zip").exists()
    assert not (data / UNPACKED / str(state["id"])).exists()
    assert sorted(p.name for p in (data / EXAMS / str(state["exam_id"])).rglob("*")
                  if p.is_file()) == ["1.dcm", "mask.nii.gz"]
    status, _, closed = patch(server, token, location, len(content), b"more")
    assert status == 409 and code(closed) == "upload_closed"


def test_every_refusal_of_the_upload(intake_server: AppServer, tmp_path: Path) -> None:
    server, tokens = intake_server, intake_server.tokens()
    lyon, bordeaux = tokens[LYON], tokens["CHU de Bordeaux"]
    status, _, body = create(server, bordeaux, 100, slug="edss")
    assert status == 403 and code(body) == "not_center_question"
    assert "sarcopenia, nodules-3d" in body["error"]["message"]
    status, _, body = create(server, lyon, 100, slug="lungs")
    assert status == 404 and code(body) == "unknown_challenge"
    for length in ("0", "-3", "lots"):
        status, _, raw = server.request("POST", "/api/v1/challenges/sarcopenia/uploads", lyon,
                                        b"", {"Upload-Length": length})
        assert status == 400 and code(json.loads(raw)) == "bad_upload_length", length
    status, _, body = create(server, lyon, 5 * 1024 ** 4)
    assert status == 413 and code(body) == "upload_too_large"

    status, headers, body = create(server, lyon, 10)
    location = headers["Location"]
    status, _, body = patch(server, lyon, location, 0, b"12345", "application/zip")
    assert status == 400 and code(body) == "bad_chunk"
    status, _, raw = server.request("PATCH", location, lyon, b"12345",
                                    {"Content-Type": "application/offset+octet-stream"})
    assert status == 400 and code(json.loads(raw)) == "bad_chunk"
    status, _, body = patch(server, lyon, location, 0, b"0123456789ABC")
    assert status == 400 and code(body) == "bad_chunk" and "10 bytes" in body["error"]["message"]
    assert server.request("HEAD", location, lyon)[1]["Upload-Offset"] == "0"
    status, _, body = patch(server, bordeaux, location, 0, b"12345")
    assert status == 404 and code(body) == "unknown_upload"
    assert server.json("GET", location, bordeaux)[0] == 404
    assert server.json("GET", "/api/v1/uploads/999999", lyon)[0] == 404

    # Ten bytes that are not a zip: refused at the last byte, and the state says why.
    status, _, body = patch(server, lyon, location, 0, b"0123456789")
    assert status == 422 and code(body) == "bad_archive"
    assert "not a zip" in body["error"]["message"]
    status, state = server.json("GET", location, lyon)
    assert state["state"] == "refused" and state["error"]["code"] == "bad_archive"
    status, _, body = patch(server, lyon, location, 10, b"x")
    assert status == 409 and code(body) == "upload_closed"


LIMITS = Limits(upload_bytes=1 << 20, unpacked_bytes=64 * 1024, entries=8)


def zipped(tmp_path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "exam.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(("entries", "links", "said"), [
    ({"../../outside.dcm": b"x"}, (), "points outside its folder"),
    ({"/etc/cron.d/x": b"x"}, (), "points outside its folder"),
    ({"exam/a.dcm": b"x"}, ("exam/link.dcm",), "is a link"),
    ({f"exam/{i}.dcm": b"x" for i in range(9)}, (), "9 entries"),
    ({"exam/bomb.dcm": bytes(65 * 1024)}, (), "would unpack to 0.1 MiB"),
    ({"__MACOSX/._a": b"x", "exam/.DS_Store": b"x"}, (), "holds no file"),
])
def test_an_unsafe_or_empty_zip_is_refused_and_leaves_nothing(
        tmp_path: Path, entries: dict[str, bytes], links: tuple[str, ...], said: str) -> None:
    archive = zipped(tmp_path, entries, links)
    target = tmp_path / "unpacked" / "1"
    with pytest.raises(BadArchive) as refused:
        unpack(archive, target, LIMITS)
    assert said in refused.value.message
    assert not target.exists() and not (tmp_path / "unpacked" / "1.partial").exists()
    assert not (tmp_path.parent / "outside.dcm").exists()


def test_a_zip_whose_sizes_lie_is_stopped_as_it_unpacks(tmp_path: Path) -> None:
    archive = zipped(tmp_path, {"exam/a.dcm": bytes(40 * 1024), "exam/b.dcm": bytes(40 * 1024)})
    # The central directory's sizes rewritten as a zip bomb's: 1 byte each.
    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        data[at + 24:at + 28] = (1).to_bytes(4, "little")   # uncompressed size
        at = data.find(b"PK\x01\x02", at + 4)
    archive.write_bytes(bytes(data))
    target = tmp_path / "unpacked" / "2"
    with pytest.raises(BadArchive, match="cannot be unpacked|more than"):
        unpack(archive, target, LIMITS)
    assert not target.exists()


def test_nested_folders_unpack_and_junk_stays_out(tmp_path: Path) -> None:
    study = write_study(tmp_path / "study")
    entries = {f"a/b/c/{p.name}": p.read_bytes() for p in study.folder.iterdir()}
    entries |= {"__MACOSX/a/._x": b"x", "a/Thumbs.db": b"x", "a/notes/readme.txt": b"hi"}
    target = tmp_path / "unpacked" / "3"
    assert unpack(zipped(tmp_path, entries), target, Limits(1 << 20, 1 << 20, 100)) == 2
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                  if p.is_file()) == ["a/b/c/IM0000", "a/notes/readme.txt"]
    assert study_uid_of(target) == study.study_uid
    (target / "a" / "b" / "c" / "IM0000").unlink()
    with pytest.raises(BadArchive, match="no DICOM file"):
        study_uid_of(target)


@pytest.fixture
def upload_process(example_event: Path, database_url: str, tmp_path: Path
                   ) -> Iterator[ServerProcess]:
    proc = ServerProcess(example_event, tmp_path / "data", database_url).start()
    yield proc
    proc.stop()


def _half_a_chunk(url: str, token: str, location: str, offset: int, chunk: bytes) -> socket.socket:
    """A PATCH whose headers promise `chunk` but whose body stops halfway (left open)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    head = (f"PATCH {location} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
            f"Content-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(chunk)}\r\n\r\n").encode()
    sock.sendall(head + chunk[:len(chunk) // 2])
    return sock


@pytest.mark.slow  # a server process killed mid-upload and restarted
def test_kill_9_mid_upload_loses_nothing_acknowledged(upload_process: ServerProcess,
                                                      tmp_path: Path) -> None:
    server = upload_process
    token = server.tokens()[LYON]
    content = exam_zip(tmp_path, "exam-0099", slices=3)
    half = len(content) // 2
    status, headers, _ = create(server, token, len(content), name="exam-0099.zip")
    location = headers["Location"]
    assert patch(server, token, location, 0, content[:half])[0] == 204   # acknowledged
    sock = _half_a_chunk(server.url, token, location, half, content[half:])
    wait_for(lambda: int(server.request("HEAD", location, token)[1]["Upload-Offset"]) > half,
             timeout=30, what="the unacknowledged half chunk to reach the server")
    server.stop(signal.SIGKILL)
    sock.close()

    server.start_on_same_port()
    status, headers, _ = server.request("HEAD", location, token)
    offset = int(headers["Upload-Offset"])
    assert status == 200 and half <= offset < len(content)     # the acknowledged bytes kept
    status, listed = server.json("GET", "/api/v1/center/exams", token)
    assert listed["exams"] == []                                # no exam before the last byte
    status, headers, _ = patch(server, token, location, offset, content[offset:])
    assert (status, headers["Upload-Offset"]) == (204, str(len(content)))

    def exam() -> dict[str, Any] | None:
        _, body = server.json("GET", "/api/v1/center/exams", token)
        done = [e for e in body["exams"] if e["stage"] not in ("received", "deidentified")]
        return done[0] if done else None
    found = wait_for(exam, timeout=60, what="the exam to be checked")
    assert (found["label"], found["files"], found["stage"]) == ("exam-0099.zip", 3, "checked")
    assert len(server.json("GET", "/api/v1/center/exams", token)[1]["exams"]) == 1


def test_the_same_study_sent_again_replaces_the_first_exam(intake_server: AppServer,
                                                           tmp_path: Path) -> None:
    """The source key (HMAC of the center and the original StudyInstanceUID) knows the study
    again, though no UID of it is kept: the first exam is excluded as resent."""
    server, token = intake_server, intake_server.tokens()[LYON]
    content = exam_zip(tmp_path, "exam-0077")
    exams = []
    for name in ("exam-0077.zip", "exam-0077-again.zip"):
        _, headers, _ = create(server, token, len(content), name=name)
        assert patch(server, token, headers["Location"], 0, content)[0] == 204
        exams.append(server.json("GET", headers["Location"], token)[1]["exam_id"])
    server.call(server.app[INTAKE].idle())
    first = server.json("GET", f"/api/v1/center/exams/{exams[0]}", token)[1]
    second = server.json("GET", f"/api/v1/center/exams/{exams[1]}", token)[1]
    assert (first["stage"], first["exclusion"]) == ("excluded", "resent")
    assert (second["stage"], second["replaces"]) == ("review", exams[0])


def test_below_the_reserve_a_chunk_gets_507_and_nothing_of_it_is_kept(
        example_event: Path, database_url: str, tmp_path: Path) -> None:
    """The data dir on a 96 MiB tmpfs filled to below the reserve (tests/test_storage.py's
    technique): a chunk is refused whole, 507 `storage_full` in the error shape of the
    submissions; once space is freed the same chunk from the same offset goes through."""
    from tests.test_storage import fill, tmpfs

    with tmpfs(tmp_path / "disk", "96m") as disk:
        server = AppServer(example_event, disk / "data", database_url, scoring_workers=0,
                           config_overrides={"storage_reserve_mb": 32.0}).start()
        try:
            token = server.tokens()[LYON]
            content = exam_zip(tmp_path, "exam-full")
            status, headers, body = create(server, token, len(content))
            assert status == 201, body
            location = headers["Location"]
            filler = fill(disk, 16 * 1024 * 1024)
            status, _, refused = patch(server, token, location, 0, content)
            assert status == 507 and code(refused) == "storage_full", refused
            assert "disk is nearly full" in refused["error"]["message"]
            assert refused["error"]["reserve_bytes"] == 32 * 1024 * 1024
            status, headers, _ = server.request("HEAD", location, token)
            assert (status, headers["Upload-Offset"]) == (200, "0")
            upload = Path(server.app[CONFIG].data_dir) / UPLOADS / f"{body['id']}.zip"
            assert upload.stat().st_size == 0
            filler.unlink()
            status, headers, _ = patch(server, token, location, 0, content)
            assert (status, headers["Upload-Offset"]) == (204, str(len(content)))
            server.call(server.app[INTAKE].idle())
            status, state = server.json("GET", location, token)
            assert state["state"] == "received" and state["exam_id"] is not None
        finally:
            server.stop()
