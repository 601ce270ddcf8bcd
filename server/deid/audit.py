"""What `podium check-release` flags in a file: what de-identifying it would change.

The same rules as the engine (server/deid/engine.py), read instead of applied. A file is
flagged for each element whose action (D, Z, X or C) would change a value that is not blank
or a dummy already (server/deid/values.py), for each non-empty private element or element of
the curve and overlay groups, and for what makes the engine reject a file (burned-in
annotation, secondary captures, text-in-pixels modalities). UIDs are never flagged: a
replaced UID cannot be told from an original one. A file that declares its dates shifted
(113107 in De-identification Method Code Sequence) has its dates taken as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from server.deid.engine import (
    PATIENT_ID,
    PATIENT_NAME,
    Context,
    blank_unread,
    collect_terms,
    declares_shifted_dates,
    elements,
    rejection,
    would_change,
)
from server.deid.policy import RELEASE, Dates, Policy

PRIVATE = "private tag"
OVERLAY = "curve or overlay (groups 50xx and 60xx are removed)"
MEANINGS = {"X": "removed", "Z": "emptied", "D": "replaced by a dummy",
            "C": "cleaned of identifying words, dates and numbers"}


@dataclass(frozen=True)
class Flag:
    """`path` goes through sequences ("RequestAttributesSequence[0].AccessionNumber")."""

    tag: BaseTag
    path: str
    reason: str


def audit(dataset: Dataset, policy: Policy = RELEASE) -> Iterator[Flag]:
    """Every flag of one dataset, depth first; rejections first."""
    refused = rejection(dataset)
    if refused is not None and refused.tag is not None:
        element = dataset.get(refused.tag)
        keyword = element.keyword if element is not None else "SOPClassUID"
        yield Flag(refused.tag, keyword, refused.message)
    if declares_shifted_dates(dataset):
        policy = dataclasses.replace(policy, dates=Dates.KEEP)
    ctx = Context(policy, collect_terms(dataset, policy))
    yield from _walk(dataset, ctx, "", top=True)


def _walk(dataset: Dataset, ctx: Context, prefix: str, top: bool) -> Iterator[Flag]:
    for tag, action, element in elements(dataset, ctx.policy):
        if action == "K" and element is None:
            continue  # kept as it is: nothing to flag
        if element is None:
            if tag.group == 0x7FE0 or blank_unread(dataset, tag):
                continue
            name = f"({tag.group:04X},{tag.element:04X})"
            if tag.is_private:
                creator = _private_creator(dataset, tag)
                reason = PRIVATE + (f" (creator {creator!r})" if creator else "")
            else:
                reason = OVERLAY
            yield Flag(tag, prefix + name, reason)
            continue
        path = prefix + (element.keyword or f"({tag.group:04X},{tag.element:04X})")
        assert action is not None
        if top and tag in (PATIENT_ID, PATIENT_NAME):
            if would_change(element, action, ctx, top=True):
                yield Flag(tag, path, "patient identity (replaced by a pseudonym)")
            continue
        if element.VR == "SQ" and action in ("K", "C", "U*"):
            for index, item in enumerate(element.value):
                yield from _walk(item, ctx, f"{path}[{index}].", top=False)
            continue
        if would_change(element, action, ctx, top=False):
            meaning = "moved by the patient's offset" if action == "C" and \
                element.VR in ("DA", "DT") else MEANINGS[action]
            yield Flag(tag, path, f"identifying attribute (PS3.15 E.1-1 {action}: {meaning})")


def _private_creator(dataset: Dataset, tag: BaseTag) -> str | None:
    block = tag.element >> 8
    if block < 0x10:  # the creator elements themselves, and group length
        return None
    creator = dataset.get((tag.group << 16) | block)
    return None if creator is None else str(creator.value)
