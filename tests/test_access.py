"""Token generation and storage."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from server.access import Role, ensure_tokens, hash_token
from server.event import parse_event


def test_generated_tokens_are_long_random_and_stable(example_event: Path, tmp_path: Path) -> None:
    event = parse_event(example_event)
    first = ensure_tokens(event, tmp_path / "data")
    assert [c.label for c in first] == ["organizer", "jury", "Lumbar Lab", "Nodule Hunters",
                                        "Myelin Minds", "Pixel Anatomy", "CHU de Lyon",
                                        "CHU de Bordeaux", "Hôpital Foch", "Dr Martin",
                                        "Dr Leroy", "Dr Petit"]
    tokens = [c.token for c in first]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
    assert ensure_tokens(event, tmp_path / "data") == first
    mode = stat.S_IMODE((tmp_path / "data" / "tokens.json").stat().st_mode)
    assert mode == 0o600


def test_tokens_in_the_event_file_win(example_event: Path, tmp_path: Path) -> None:
    ensure_tokens(parse_event(example_event), tmp_path / "data")
    given = "jury-token-given-in-the-file"
    text = example_event.read_text().replace(
        "[[challenges]]", f'[access]\njury_token = "{given}"\n\n[[challenges]]', 1)
    example_event.write_text(text)
    credentials = ensure_tokens(parse_event(example_event), tmp_path / "data")
    jury = next(c for c in credentials if c.role is Role.JURY)
    assert jury.token == given


def test_hash_is_sha256() -> None:
    assert hash_token("abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_no_generated_token_reads_as_a_command_line_option() -> None:
    from server.access import generate_token

    # One token_urlsafe in 64 starts with "-"; in 2,000 draws that would show ~31 times.
    tokens = [generate_token() for _ in range(2000)]
    assert not [t for t in tokens if t.startswith("-")]
    assert all(len(t) == 43 for t in tokens)
