"""De-identification of DICOM files by the PS3.15 Annex E Basic Profile (docs/deidentification.md).

`table` holds Table E.1-1, `policy` the options a challenge applies, `secret` the event secret
and what it derives, `values` the replacement values, `engine` the walk over a dataset and
`audit` what `podium check-release` flags with the same rules.
"""

from server.deid.audit import Flag, audit
from server.deid.engine import (
    Change,
    Rejection,
    Result,
    deidentify,
    deidentify_file,
    read_dicom,
)
from server.deid.policy import RELEASE, Dates, Policy
from server.deid.secret import Keys, load_keys

__all__ = ["RELEASE", "Change", "Dates", "Flag", "Keys", "Policy", "Rejection", "Result", "audit",
           "deidentify", "deidentify_file", "load_keys", "read_dicom"]
