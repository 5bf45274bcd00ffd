"""Where the bench scripts find face data, and the SFHQ chips several of them time on.

../shared/data beside the repository (or $FACEPRIV_TEST_DATA), as the tests read it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from facepriv_core import faces

DATA = Path(os.environ.get("FACEPRIV_TEST_DATA", Path(__file__).resolve().parents[2] /
                           "shared" / "data"))
SFHQ = DATA / "sfhq"
OLIVETTI = DATA / "olivetti"


def sfhq_chips(n: int) -> torch.Tensor | None:
    """The first n SFHQ crops (sorted by file) with exactly one face, aligned, as (n, 3, 150,
    150) in [0, 1]; None without the sample or with fewer usable crops."""
    manifest = SFHQ / "manifest.csv"
    if not manifest.is_file():
        return None
    with open(manifest, newline="") as f:
        files = sorted(row["file"] for row in csv.DictReader(f))
    chips = []
    for file in files:
        try:
            face = faces.detect_and_align(faces.load_image(SFHQ / file))
        except faces.InputError:
            continue
        if not face.others:
            chips.append(face.chip150)
        if len(chips) == n:
            return faces.chips_to_tensor(np.stack(chips))
    return None
