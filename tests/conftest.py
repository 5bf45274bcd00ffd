"""Shared fixtures: test data from ../shared/data (skipped with a reason where absent)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEPRIV_TEST_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"test data not found at {DATA} (set FACEPRIV_TEST_DATA)")
    return DATA


@pytest.fixture(scope="session")
def sfhq_dir(data_dir: Path) -> Path:
    path = data_dir / "sfhq"
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"SFHQ sample not found at {path}")
    return path


@pytest.fixture(scope="session")
def sfhq_rows(sfhq_dir: Path) -> list[dict[str, str]]:
    with open(sfhq_dir / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def olivetti_path(data_dir: Path) -> Path:
    path = data_dir / "olivetti" / "olivettifaces.mat"
    if not path.is_file():
        pytest.skip(f"Olivetti faces not found at {path}")
    return path


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()
