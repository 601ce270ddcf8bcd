from __future__ import annotations

import re
import tomllib

import pytest

from server.inclusion.criteria import Criteria, parse_criteria
from server.inclusion.headers import SeriesSummary
from tests.helpers import ROOT

from . import corpus


def table_1() -> dict[str, Criteria]:
    """The seed's Table 1 as docs/inclusion.md writes it, parsed as the event loader will."""
    doc = (ROOT / "docs" / "inclusion.md").read_text()
    block = re.search(r"<!-- table-1:.*?-->\n```toml\n(.*?)```", doc, re.S)
    assert block, "docs/inclusion.md lost its Table 1 block"
    challenges = tomllib.loads(block.group(1))["challenges"]
    return {c["slug"]: parse_criteria(c["inclusion"]["criteria"],
                                      f"challenges[{i}].inclusion.criteria")
            for i, c in enumerate(challenges)}


@pytest.fixture(scope="session")
def criteria() -> dict[str, Criteria]:
    return table_1()


@pytest.fixture(scope="session")
def summaries() -> dict[str, SeriesSummary]:
    """Every corpus series, written to DICOM bytes, read back headers only and summarised
    one file at a time."""
    return {name: SeriesSummary.from_datasets(iter(series.files()))
            for name, series in {**corpus.CT_SERIES, **corpus.MR_SERIES}.items()}
