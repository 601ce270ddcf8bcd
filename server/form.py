"""An upload's multipart/form-data body, read as a stream with limits a team cannot exceed.

aiohttp's own reader parses each part without ever handing the event loop back when the bytes
are already buffered: one body of 195,000 tiny parts held the loop for 41 s. This reader
counts the parts and the bytes of the fields before the file, refuses past a small bound, and
yields to the loop after every read, whatever the framing (Content-Length or chunked).
"""

from __future__ import annotations

import asyncio
import email.message
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

# Reads the next bytes of the body; b"" at its end.
Read = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class FormLimits:
    """What may come before the file: browsers and clients send the file alone, or with a
    field or two."""

    parts_before_file: int = 16
    field_bytes: int = 64 * 1024  # all the other fields' values together
    header_bytes: int = 8 * 1024  # one part's headers
    preamble_bytes: int = 1024  # text before the first boundary (none in practice)


class FormError(Exception):
    """The body is not a form this server accepts; the message says what to send instead."""


@dataclass(frozen=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str | None


def boundary_of(content_type: str | None) -> bytes:
    """The boundary parameter of a multipart/form-data Content-Type (RFC 2046: 1–70 chars)."""
    message = email.message.Message()
    message["Content-Type"] = content_type or ""
    boundary = message.get_param("boundary")
    if message.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise FormError("send the file as multipart/form-data in a field named 'file'")
    if not 1 <= len(boundary) <= 70 or not boundary.isascii():
        raise FormError("the multipart boundary must be 1 to 70 ASCII characters")
    return boundary.encode("ascii")


class FormReader:
    """Parts in order; the body of the current part is streamed by `body()`."""

    def __init__(self, read: Read, boundary: bytes, limits: FormLimits | None = None) -> None:
        self._read = read
        self._limits = limits or FormLimits()
        self._delimiter = b"\r\n--" + boundary
        # The first boundary may open the body without a line break before it.
        self._buffer = bytearray(b"\r\n")
        self._eof = False
        self._started = False
        self._finished = False
        self.parts_seen = 0
        self.field_bytes = 0

    async def _more(self) -> None:
        data = await self._read()
        if data:
            self._buffer += data
        else:
            self._eof = True
        # Hand the loop back after every read: the body may already be buffered, and then no
        # await below would ever suspend.
        await asyncio.sleep(0)

    async def _need(self, count: int) -> None:
        while len(self._buffer) < count and not self._eof:
            await self._more()
        if len(self._buffer) < count:
            raise _cut_short()

    async def _line(self, limit: int, what: str) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 2]
                return line
            if len(self._buffer) > limit:
                raise FormError(f"{what} is longer than {limit} bytes")
            if self._eof:
                raise _cut_short()
            await self._more()

    async def _skip_preamble(self) -> None:
        limit = self._limits.preamble_bytes + len(self._delimiter)
        while True:
            found = self._buffer.find(self._delimiter)
            if found >= 0:
                del self._buffer[:found + len(self._delimiter)]
                return
            if len(self._buffer) > limit:
                raise FormError("the body does not start with the boundary given in its "
                                "Content-Type")
            if self._eof:
                raise _cut_short()
            await self._more()

    async def _after_delimiter(self) -> bool:
        """True when another part follows the delimiter just read, False at the closing one."""
        await self._need(2)
        if self._buffer[:2] == b"--":
            self._finished = True
            return False
        padding = await self._line(256, "a boundary line")
        if padding.strip(b" \t"):
            raise FormError("a multipart boundary line holds unexpected text")
        return True

    async def next_part(self) -> Part | None:
        """The next part's headers, or None after the closing boundary. The previous part's
        body must have been read to its end (`body()` or `skip()`)."""
        if self._finished:
            return None
        if not self._started:
            self._started = True
            await self._skip_preamble()
        if not await self._after_delimiter():
            return None
        self.parts_seen += 1
        headers = await self._headers()
        message = email.message.Message()
        for name, value in headers:
            message[name] = value
        field = message.get_param("name", header="Content-Disposition")
        return Part(name=field if isinstance(field, str) else None,
                    filename=message.get_filename(),
                    content_type=message.get("Content-Type"))

    async def _headers(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        budget = self._limits.header_bytes
        while True:
            line = await self._line(budget, "a part's headers")
            budget -= len(line) + 2
            if budget < 0:
                raise FormError(f"a part's headers are longer than "
                                f"{self._limits.header_bytes} bytes")
            if not line:
                return found
            name, colon, value = line.decode("utf-8", "replace").partition(":")
            if colon and name.strip():
                found.append((name.strip(), value.strip()))

    async def body(self) -> AsyncIterator[bytes]:
        """The current part's bytes, as they arrive, up to its closing delimiter."""
        delimiter = self._delimiter
        keep = len(delimiter) - 1  # a delimiter may straddle two reads
        while True:
            found = self._buffer.find(delimiter)
            if found >= 0:
                if found:
                    yield bytes(self._buffer[:found])
                del self._buffer[:found + len(delimiter)]
                return
            if len(self._buffer) > keep:
                chunk = bytes(self._buffer[:-keep])
                del self._buffer[:-keep]
                yield chunk
            if self._eof:
                raise _cut_short()
            await self._more()

    async def skip_field(self) -> None:
        """Reads past a part that is not the file, counting its bytes against the limit."""
        async for chunk in self.body():
            self.field_bytes += len(chunk)
            if self.field_bytes > self._limits.field_bytes:
                raise FormError(f"the fields before the file hold more than "
                                f"{self._limits.field_bytes // 1024} KiB; send the file alone "
                                "in a field named 'file'")

    async def file_part(self, field: str = "file") -> Part:
        """Skips the parts before the field `field` (at most `parts_before_file` of them) and
        returns its headers; its bytes follow with `body()`."""
        while True:
            part = await self.next_part()
            if part is None:
                raise FormError(f"no field named {field!r} in the upload")
            if part.name == field:
                return part
            if self.parts_seen > self._limits.parts_before_file:
                raise FormError(f"the upload has more than {self._limits.parts_before_file} "
                                f"parts before the file; at most "
                                f"{self._limits.parts_before_file} are allowed, send the file "
                                f"in a field named {field!r}")
            await self.skip_field()


def _cut_short() -> FormError:
    return FormError("the upload ended before its closing boundary: the body was cut short")
