"""Shared fixtures: test data from ../shared/data (skipped with a reason where absent)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEPRIV_TEST_DATA", ROOT.parent / "shared" / "data"))
#: What most of the suite reads; in CI (env CI set) their absence fails the run at once.
REQUIRED_DATA = ("sfhq/manifest.csv", "olivetti/olivettifaces.mat")
#: pytest's exit status for "the run could not start" (a usage error).
MISSING_DATA_EXIT = 4


def pytest_sessionstart(session: pytest.Session) -> None:
    """Outside CI, tests that need ../shared/data skip with a reason; in CI it is always
    there, so its absence means a broken checkout, and the suite must not pass on the few
    tests that need no data."""
    if not os.environ.get("CI"):
        return
    missing = [rel for rel in REQUIRED_DATA if not (DATA / rel).is_file()]
    if missing:
        pytest.exit(f"CI is set but the test data is missing: {', '.join(missing)} under {DATA} "
                    "(put ../shared/data beside the checkout or set FACEPRIV_TEST_DATA)",
                    returncode=MISSING_DATA_EXIT)


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


class SfhqFaces:
    """SFHQ crops aligned on demand, each file at most once per test session.

    Test modules pick their own faces (grid, order, single-face only, offset) but share the
    alignment work, which is most of their set-up time.
    """

    def __init__(self, root: Path, rows: list[dict[str, str]]) -> None:
        self.root = root
        self.rows = rows
        self._faces: dict[str, object] = {}

    def face(self, file: str) -> object | None:
        """The aligned FaceImage of one crop, or None where no face is found."""
        from facepriv_core import faces

        if file not in self._faces:
            try:
                self._faces[file] = faces.detect_and_align(faces.load_image(self.root / file))
            except faces.InputError:
                self._faces[file] = None
        return self._faces[file]

    def chips(self, n: int, *, grid: str | None = None, sort: bool = False,
              single_face: bool = False, skip: int = 0) -> np.ndarray:
        """uint8 (n, 150, 150, 3) chips of the first n usable crops in manifest order (or
        sorted by file name), optionally of one grid or with exactly one face found."""
        files = [r["file"] for r in self.rows[skip:] if grid in (None, r["grid"])]
        chips = []
        for file in sorted(files) if sort else files:
            face = self.face(file)
            if face is None or (single_face and face.others):
                continue
            chips.append(face.chip150)
            if len(chips) == n:
                return np.stack(chips)
        pytest.fail(f"only {len(chips)} usable SFHQ faces for this selection, {n} needed")


@pytest.fixture(scope="session")
def sfhq_faces(sfhq_dir: Path, sfhq_rows: list[dict[str, str]]) -> SfhqFaces:
    return SfhqFaces(sfhq_dir, sfhq_rows)
