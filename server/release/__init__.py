"""The validation-set release: packing and sealing the archive, and the GDPR guard."""

from server.errors import ReleaseError, WrongKeyError
from server.release.archive import (
    ManifestEntry,
    PreparedRelease,
    prepare_release,
)
from server.release.guard import (
    AnonymizeReport,
    Finding,
    Inspection,
    anonymize,
    inspect_release,
    record_override,
    scan_release,
)
from server.release.seal import Unsealed, new_key, normalize_key, unseal

__all__ = [
    "AnonymizeReport", "Finding", "Inspection", "ManifestEntry", "PreparedRelease",
    "ReleaseError", "Unsealed", "WrongKeyError", "anonymize", "inspect_release", "new_key",
    "normalize_key", "prepare_release", "record_override", "scan_release", "unseal",
]
