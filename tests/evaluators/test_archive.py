"""The zip reader: names, links, duplicates and byte limits, checked before inflating."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from server.evaluators.archive import is_junk, normalise_name, open_archive
from server.evaluators.result import Invalid

from .factory import write_zip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b.png", "a/b.png"), ("a\\b.png", "a/b.png"), ("./a//b.png", "a/b.png"),
     ("a/../b.png", "b.png"), ("../b.png", None), ("a/../../b.png", None), ("/etc/x", None),
     ("C:/x.png", None), ("c:x.png", None), ("a\x00.png", None)],
)
def test_normalise_name(raw: str, expected: str | None) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(("name", "junk"), [("__MACOSX/a/._x.png", True), ("a/.DS_Store", True),
                                            ("._x.png", True), ("Thumbs.db", True),
                                            ("a/x.png", False)])
def test_junk(name: str, junk: bool) -> None:
    assert is_junk(name) is junk


def _codes(path: Path, **limits: int) -> list[str]:
    options = {"max_members": 100, "max_expanded_bytes": 10**6, **limits}
    with pytest.raises(Invalid) as info:
        open_archive(path, **options)
    return [p.code for p in info.value.problems]


def test_limits_are_checked_on_the_directory(tmp_path: Path) -> None:
    many = write_zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(11)})
    assert _codes(many, max_members=10) == ["too_many_members"]
    big = write_zip(tmp_path / "big.zip", {"a.npy": bytes(2000)})
    assert _codes(big, max_expanded_bytes=1000) == ["too_large"]


def test_bytes_are_counted_while_inflating(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"a.bin": bytes(600), "b.bin": bytes(600)})
    with open_archive(path, max_members=10, max_expanded_bytes=2000) as archive:
        # As if the directory had understated the sizes: the reader still stops.
        archive.max_expanded_bytes = 1000
        (name, info), (name2, info2) = archive.members
        assert len(archive.read(name, info)) == 600
        with pytest.raises(Invalid) as exc:
            archive.read(name2, info2)
        assert exc.value.problems[0].code == "too_large"
        assert archive.expanded <= 1001 + 600


def test_all_name_problems_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("../up.png", "/abs.png", "m/a.png", "m//a.png"):
            archive.writestr(name, b"x")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "target")
    assert sorted(_codes(path)) == ["duplicate_path", "symlink", "unsafe_path"]


def test_junk_and_directories_are_not_members(tmp_path: Path) -> None:
    path = tmp_path / "mac.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("masks/", b"")
        archive.writestr("masks/0042.png", b"x")
        archive.writestr("__MACOSX/masks/._0042.png", b"x")
        archive.writestr("masks/.DS_Store", b"x")
    with open_archive(path, max_members=10, max_expanded_bytes=100) as archive:
        assert [name for name, _ in archive.members] == ["masks/0042.png"]
