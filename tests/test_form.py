"""The upload form reader: what browsers and clients send is read exactly, whatever the read
sizes; what a hostile team sends is refused before it costs the event loop anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.form import FormError, FormLimits, FormReader, boundary_of

BOUNDARY = b"----podiumFormBoundary7MA4YWxkTrZu0gW"


def form(parts: Iterable[tuple[str, str | None, bytes]], boundary: bytes = BOUNDARY,
         preamble: bytes = b"") -> bytes:
    out = [preamble]
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(b"--" + boundary + b"\r\nContent-Disposition: " + disposition.encode() +
                   b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def reader(body: bytes, size: int = 65536, limits: FormLimits | None = None) -> FormReader:
    chunks = [body[i:i + size] for i in range(0, len(body), size)]

    async def read() -> bytes:
        return chunks.pop(0) if chunks else b""

    return FormReader(read, BOUNDARY, limits)


async def read_file(form_reader: FormReader) -> tuple[str | None, bytes]:
    part = await form_reader.file_part()
    data = b"".join([chunk async for chunk in form_reader.body()])
    return part.filename, data


def test_a_browser_form_is_read_exactly_at_every_read_size() -> None:
    content = b"id,probability\r\nNOD001,0.5\r\n--" + BOUNDARY[:-1] + b"\r\n\r\n--\r\n"
    body = form([("note", None, b"first try"), ("file", "preds final.csv", content),
                 ("after", None, b"ignored")])
    for size in (1, 2, 3, 7, 41, 64, 1000, len(body)):
        assert asyncio.run(read_file(reader(body, size))) == ("preds final.csv", content), size


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=97))
def test_any_content_round_trips(content: bytes, size: int) -> None:
    body = form([("file", "x.bin", content)])
    assert asyncio.run(read_file(reader(body, size))) == ("x.bin", content)


def test_a_preamble_and_a_field_named_file_without_a_filename() -> None:
    body = form([("file", None, b"abc")], preamble=b"This is a MIME preamble.\r\n")
    assert asyncio.run(read_file(reader(body, 5))) == (None, b"abc")


def test_refusals_name_the_limit() -> None:
    def refusal(body: bytes, limits: FormLimits | None = None) -> str:
        with pytest.raises(FormError) as caught:
            asyncio.run(read_file(reader(body, limits=limits)))
        return str(caught.value)

    many = form([(f"f{i}", None, b"x") for i in range(17)] + [("file", "a.csv", b"a")])
    assert "more than 16 parts before the file; at most 16 are allowed" in refusal(many)
    sixteen = form([(f"f{i}", None, b"x") for i in range(16)] + [("file", "a.csv", b"a")])
    assert asyncio.run(read_file(reader(sixteen))) == ("a.csv", b"a")
    big_field = form([("note", None, b"x" * 70_000), ("file", "a.csv", b"a")])
    assert "hold more than 64 KiB" in refusal(big_field)
    long_header = (b"--" + BOUNDARY + b"\r\nX-Pad: " + b"p" * 9000 + b"\r\n\r\nx\r\n--" +
                   BOUNDARY + b"--\r\n")
    assert "headers are longer than 8192 bytes" in refusal(long_header)
    assert "no field named 'file'" in refusal(form([("other", "a.csv", b"a")]))
    assert "cut short" in refusal(form([("file", "a.csv", b"abc")])[:-30])
    assert "does not start with the boundary" in refusal(b"x" * 5000)


def test_boundary_of_the_content_type() -> None:
    assert boundary_of(f'multipart/form-data; boundary="{BOUNDARY.decode()}"') == BOUNDARY
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    for bad in (None, "application/json", "multipart/form-data", "multipart/mixed; boundary=a",
                "multipart/form-data; boundary=" + "b" * 71):
        with pytest.raises(FormError):
            boundary_of(bad)


def test_a_flood_of_parts_already_buffered_still_lets_the_loop_run() -> None:
    # 100,000 tiny parts arriving at once: the reader hands the loop back after every read, so
    # a ticker keeps ticking while it works through them (limits lifted to see the parsing).
    tiny = form([(f"f{i}", None, b"x") for i in range(100_000)] + [("file", "a.csv", b"a")])
    lifted = FormLimits(parts_before_file=10**6, field_bytes=10**7)

    async def go() -> tuple[int, float]:
        ticks = 0
        worst = 0.0

        async def ticker() -> None:
            # The gap between two ticks in CPU time of this thread: what the reader held the
            # loop for, whatever else the machine is doing (wall time would measure the load).
            nonlocal ticks, worst
            while True:
                before = time.thread_time()
                await asyncio.sleep(0)
                worst = max(worst, time.thread_time() - before)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        assert await read_file(reader(tiny, 65536, lifted)) == ("a.csv", b"a")
        task.cancel()
        return ticks, worst

    ticks, worst = asyncio.run(go())
    assert ticks > 50 and worst < 0.1
