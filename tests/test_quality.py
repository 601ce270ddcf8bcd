"""The code stays as pyproject.toml asks: ruff clean everywhere, mypy clean on server/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # runs ruff and mypy over the whole tree


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "server", "tests", "bench",
                             "examples", "docs"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "server"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
