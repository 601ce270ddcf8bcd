"""Hostile archives, written byte by byte: members that inflate to gigabytes from a few MB
(deflate repeats one flushed segment), and directories of millions of entries.

zipfile cannot write these quickly (it would compress every byte); the structures here are
the ones PKWARE's APPNOTE describes, and zipfile reads them back.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SEGMENT = 16 * 1024**2
DOS_TIME, DOS_DATE = 0, (2019 - 1980) << 9 | 10 << 5 | 4


@dataclass(frozen=True)
class Member:
    """A member as it is stored: its deflated pieces (the last one repeated), CRC and size."""

    name: str
    pieces: tuple[bytes, ...]
    repeat: int  # how many times pieces[-1] follows pieces[:-1] (a bomb's repeated segment)
    tail: bytes
    crc: int
    size: int

    def compressed(self) -> Iterator[bytes]:
        yield from self.pieces[:-1]
        for _ in range(self.repeat):
            yield self.pieces[-1]
        yield self.tail

    @property
    def compressed_size(self) -> int:
        return sum(len(p) for p in self.pieces[:-1]) + len(self.pieces[-1]) * self.repeat + \
            len(self.tail)


def plain(name: str, data: bytes) -> Member:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(data) + deflater.flush()
    return Member(name, (body,), 1, b"", zlib.crc32(data), len(data))


def inflating(name: str, head: bytes, filler: bytes, total: int, end: bytes = b"") -> Member:
    """`head`, then `filler` repeated, then `end`: `total` bytes deflated as one flushed
    segment repeated, so a member of gigabytes takes a few MB. `filler`'s length must divide
    SEGMENT and `head`'s, and `total - len(end)` must be a multiple of SEGMENT."""
    body = total - len(end)
    assert SEGMENT % len(filler) == 0 and len(head) % len(filler) == 0
    assert body % SEGMENT == 0 and body >= SEGMENT
    block = filler * (SEGMENT // len(filler))
    first = head + block[len(head):]
    start = zlib.compressobj(9, zlib.DEFLATED, -15)
    first_piece = start.compress(first) + start.flush(zlib.Z_FULL_FLUSH)
    # A fresh deflater after a full flush: no back-reference crosses a segment's start.
    again = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = again.compress(block) + again.flush(zlib.Z_FULL_FLUSH)
    closing = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = closing.compress(end) + closing.flush(zlib.Z_FINISH)
    crc = zlib.crc32(first)
    repeat = body // SEGMENT - 1
    for _ in range(repeat):
        crc = zlib.crc32(block, crc)
    return Member(name, (first_piece, piece), repeat, tail, zlib.crc32(end, crc), total)


def write(path: Path, members: list[Member]) -> Path:
    """A zip of already deflated members (sizes below 4 GiB: no ZIP64 needed)."""
    directory = io.BytesIO()
    with path.open("wb") as out:
        for member in members:
            offset = out.tell()
            name = member.name.encode()
            out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, DOS_TIME, DOS_DATE,
                                  member.crc, member.compressed_size, member.size, len(name), 0))
            out.write(name)
            for piece in member.compressed():
                out.write(piece)
            directory.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, DOS_TIME,
                                        DOS_DATE, member.crc, member.compressed_size,
                                        member.size, len(name), 0, 0, 0, 0, 0o644 << 16,
                                        offset))
            directory.write(name)
        start = out.tell()
        out.write(directory.getvalue())
        count = len(members)
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count,
                              len(directory.getvalue()), start, 0))
    return path


def many_entries(path: Path, entries: int, *, declared: int | None = None) -> Path:
    """A zip whose central directory lists `entries` entries (all the same empty file), with
    ZIP64 end records declaring `declared` entries (default: the truth)."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, DOS_TIME, DOS_DATE, 0, 0, 0, 1, 0)
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, 0, DOS_TIME, DOS_DATE, 0, 0, 0,
                        1, 0, 0, 0, 0, 0o644 << 16, 0) + b"a"
    count = entries if declared is None else declared
    with path.open("wb") as out:
        out.write(local + b"a")
        start = out.tell()
        out.write(entry * entries)
        size = len(entry) * entries
        zip64_at = out.tell()
        out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                              size, start))
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                              0xFFFFFFFF, 0))
    return path


def readable(path: Path, name: str, prefix: int) -> bytes:
    """The first `prefix` bytes of a member, read by zipfile: the bomb is a real zip."""
    with zipfile.ZipFile(path) as archive, archive.open(name) as stream:
        return stream.read(prefix)
