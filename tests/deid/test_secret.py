"""The event secret: created once, mode 0600, refused when others can read it; and what it
derives (pseudonyms, UIDs, date offsets)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import UID

from server.deid.secret import SECRET_FILE, Keys, load_keys
from server.errors import ReleaseError

KEYS = Keys(b"secret test secret of 32 bytes..")


def test_the_secret_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_keys(data_dir)
    path = data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text())) == 32
    assert load_keys(data_dir) == first  # the same secret next time
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no draft left behind
    assert "secret" not in repr(first).replace("Keys(", "")  # kept out of reprs
    assert load_keys(tmp_path / "other") != first


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    load_keys(tmp_path)
    os.chmod(tmp_path / SECRET_FILE, 0o644)
    with pytest.raises(ReleaseError, match="readable by others.*chmod 600"):
        load_keys(tmp_path)


@pytest.mark.parametrize("content", ["not hex\n", "00ff\n"])
def test_a_damaged_secret_says_what_to_do(tmp_path: Path, content: str) -> None:
    path = tmp_path / SECRET_FILE
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ReleaseError, match="remove it to get a new one"):
        load_keys(tmp_path)


def test_pseudonyms_are_keyed_and_stable() -> None:
    assert KEYS.pseudonym("IPP-0042137") == KEYS.pseudonym("IPP-0042137")
    assert re.fullmatch(r"PSEUDO-[0-9A-F]{16}", KEYS.pseudonym("IPP-0042137"))
    assert KEYS.pseudonym("IPP-0042137") != KEYS.pseudonym("IPP-0042138")
    assert Keys(b"x" * 32).pseudonym("IPP-0042137") != KEYS.pseudonym("IPP-0042137")
    with pytest.raises(ValueError, match="16 bytes"):
        Keys(b"short")


@given(st.text(alphabet="0123456789.", min_size=1, max_size=64))
def test_replacement_uids_are_valid_2_25_uids(original: str) -> None:
    uid = KEYS.uid(original)
    assert UID(uid).is_valid and uid.startswith("2.25.") and len(uid) <= 64
    assert uid == KEYS.uid(original) != Keys(b"y" * 32).uid(original)
    value = int(uid[5:])
    assert (value >> 76) & 0xF == 8 and (value >> 62) & 0x3 == 2  # UUID version 8, RFC variant


@given(st.text(max_size=30))
def test_offsets_are_whole_days_back_one_to_ten_years(patient: str) -> None:
    offset = KEYS.date_offset_days(patient)
    assert isinstance(offset, int) and -3652 <= offset <= -366
    assert offset == KEYS.date_offset_days(patient)
