"""Contrast from the headers: the agent, the route, and the words centers write."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from server.inclusion.contrast import contrast_evidence
from server.inclusion.headers import SeriesSummary


def summary(description: str = "", agent: str = "", route: str = "",
            protocol: str = "") -> SeriesSummary:
    return SeriesSummary("1.2", "1.2.3", 2, description, protocol, 1, (),
                         contrast_agent=agent, contrast_route=route)


@pytest.mark.parametrize(("description", "state"), [
    ("TAP injecté", "injected"), ("TDM TAP INJECTE", "injected"),
    ("Abdomen avec injection", "injected"), ("THORAX INJ", "injected"),
    ("ABD PELVIS C+", "injected"), ("Thorax IV", "injected"), ("Abdo +C", "injected"),
    ("Portal 1.0 B30f", "injected"), ("Phase artérielle", "injected"),
    ("Temps tardif", "injected"), ("post-contrast t1", "injected"),
    ("Abdomen mit KM", "injected"), ("Addome con mdc", "injected"),
    ("t1_se_tra +Gd", "injected"), ("T1 GADO", "injected"),
    ("TAP sans injection", "not_injected"), ("Thorax sans IV", "not_injected"),
    ("Abdomen non injecté", "not_injected"), ("TDM ABDO NON INJECTE", "not_injected"),
    ("ABD C-", "not_injected"), ("Chest w/o", "not_injected"),
    ("CHEST WITHOUT CONTRAST", "not_injected"), ("Schädel nativ", "not_injected"),
    ("Abdomen ohne KM", "not_injected"), ("Abdomen sin contraste", "not_injected"),
    ("pré-contraste", "not_injected"),
    ("TAP sans et avec injection", "unknown"),      # says both
    ("Thorax C-/C+", "unknown"), ("Abdomen sans injection, portal", "unknown"),
    ("Thorax 1.0 B70f", "unknown"), ("", "unknown"),
    ("IVC filter", "unknown"),        # IV inside a word is not IV
    ("Civ", "unknown"),
])
def test_the_words_of_the_description(description: str, state: str) -> None:
    assert contrast_evidence(summary(description)).state == state


def test_the_agent_and_route_come_before_the_words() -> None:
    injected = contrast_evidence(summary("sans injection", agent="Iomeron 350", route="IV"))
    assert injected.state == "injected"
    assert injected.reason == "ContrastBolusAgent 'Iomeron 350', route IV"
    assert contrast_evidence(summary(agent="NONE")).state == "not_injected"
    assert contrast_evidence(summary(agent="Aucun")).state == "not_injected"
    assert contrast_evidence(summary(agent="sans")).state == "not_injected"
    oral = contrast_evidence(summary(agent="Telebrix Gastro", route="ORAL"))
    assert oral.state == "not_injected" and "by mouth" in oral.reason
    assert contrast_evidence(summary(route="INTRAVENOUS")).state == "injected"
    assert contrast_evidence(summary(route="Oral")).state == "not_injected"
    assert contrast_evidence(summary(protocol="ABDO PORTAL")).state == "injected"


def test_pydicoms_files() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ct = SeriesSummary.from_datasets([pydicom.dcmread(path, stop_before_pixels=True)])
    assert contrast_evidence(ct).reason == "ContrastBolusAgent 'ISOVUE300/100', route IV"
    path = get_testdata_file("examples_overlay.dcm")
    assert path is not None
    mr = SeriesSummary.from_datasets([pydicom.dcmread(path, stop_before_pixels=True)])
    assert contrast_evidence(mr).state == "injected"       # "11 ml Omniscan"
    path = get_testdata_file("MR_small.dcm")
    assert path is not None
    plain = SeriesSummary.from_datasets([pydicom.dcmread(path, stop_before_pixels=True)])
    assert contrast_evidence(plain).state == "unknown"     # ContrastBolusAgent empty
