"""The event secret, and what is derived from it: pseudonyms, replacement UIDs, date offsets.

Everything is an HMAC-SHA256 under one secret per event, so the same input gives the same
output in every file (a series stays a series, a patient one patient) and nobody without the
secret can go back or check a guess: an unkeyed hash of a patient ID could be reversed by
hashing every plausible ID. The secret is a file under the data dir, mode 0600, created on
first use; whoever can read it can link pseudonyms to the identifiers they replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from server.errors import ReleaseError

SECRET_FILE = "deid-secret"  # noqa: S105 - a file name, not a password
PSEUDONYM_PREFIX = "PSEUDO-"
PSEUDONYM_HEX = 16  # 64 bits: no collision to fear among a challenge's patients
UID_ROOT = "2.25."
# Offsets move every date of a patient back by one to ten years, a whole number of days.
OFFSET_MIN_DAYS, OFFSET_MAX_DAYS = 366, 3652


@dataclass(frozen=True)
class Keys:
    """What one event secret derives. The secret is kept out of reprs and logs."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("the de-identification secret must be at least 16 bytes")

    def _digest(self, purpose: str, value: str) -> bytes:
        message = purpose.encode() + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def pseudonym(self, patient_id: str) -> str:
        """PatientID and PatientName of the de-identified copy: `PSEUDO-` and 16 hex digits."""
        return PSEUDONYM_PREFIX + self._digest("patient", patient_id).hex()[:PSEUDONYM_HEX].upper()

    def uid(self, original: str) -> str:
        """A UID in the 2.25 root (ITU-T X.667): the decimal value of a UUID whose 122 free
        bits are the HMAC of the original UID, marked version 8 (RFC 9562, "custom")."""
        raw = bytearray(self._digest("uid", original)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80
        raw[8] = (raw[8] & 0x3F) | 0x80
        return UID_ROOT + str(int.from_bytes(raw, "big"))

    def date_offset_days(self, patient_key: str) -> int:
        """The (negative) number of days every date of this patient is moved by."""
        span = OFFSET_MAX_DAYS - OFFSET_MIN_DAYS + 1
        value = int.from_bytes(self._digest("dates", patient_key)[:8], "big")
        return -(OFFSET_MIN_DAYS + value % span)


def load_keys(data_dir: Path, name: str = SECRET_FILE) -> Keys:
    """The event's keys from DATA_DIR/deid-secret, the file created (mode 0600) if missing.

    A secret file that others may read is refused rather than used: fix its mode.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / name
    if not path.exists():
        # Written whole under another name, then linked: a reader never sees half a secret,
        # and of two processes creating it at once, one link wins and both use its secret.
        draft = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ReleaseError(f"{path} is readable by others (mode {mode:04o}); "
                           f"run `chmod 600 {path}`")
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ReleaseError(f"{path} does not hold a hex secret; remove it to get a new one "
                           "(pseudonyms and UIDs will then change)") from None
    if len(secret) < 16:
        raise ReleaseError(f"{path} holds a secret shorter than 16 bytes; remove it to get a "
                           "new one (pseudonyms and UIDs will then change)")
    return Keys(secret)
