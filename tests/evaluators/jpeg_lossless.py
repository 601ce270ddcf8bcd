"""A minimal JPEG Lossless (process 14, first-order prediction) encoder for 8-bit masks.

No Python package writes this transfer syntax, yet CT archives use it; the tests need a
real bitstream to prove the pylibjpeg decoder path works on a mask.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

# Nine difference categories (0..8 suffice for 8-bit samples), all coded on four bits.
_CODE_LENGTH = 4
_CATEGORIES = 9


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def encode(pixels: npt.NDArray[np.uint8]) -> bytes:
    rows, columns = pixels.shape
    x = pixels.astype(np.int32)
    predicted = np.empty_like(x)
    predicted[0, 0] = 128
    predicted[0, 1:] = x[0, :-1]
    predicted[1:, 0] = x[:-1, 0]
    predicted[1:, 1:] = x[1:, :-1]  # selection value 1: the left neighbour
    bits: list[str] = []
    for d in (x - predicted).ravel().tolist():
        category = abs(d).bit_length()
        bits.append(format(category, f"0{_CODE_LENGTH}b"))
        if category:
            extra = d if d > 0 else d + (1 << category) - 1
            bits.append(format(extra, f"0{category}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for i in range(0, len(stream), 8):
        byte = int(stream[i : i + 8], 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0x00)
    counts = [0] * 16
    counts[_CODE_LENGTH - 1] = _CATEGORIES
    return b"".join([
        b"\xff\xd8",
        _segment(0xFFC3, struct.pack(">BHHB", 8, rows, columns, 1) + bytes([1, 0x11, 0])),
        _segment(0xFFC4, bytes([0x00]) + bytes(counts) + bytes(range(_CATEGORIES))),
        _segment(0xFFDA, bytes([1, 1, 0x00, 1, 0, 0])),
        bytes(data),
        b"\xff\xd9",
    ])
