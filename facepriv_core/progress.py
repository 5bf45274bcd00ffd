"""Progress reporting: the event long work streams (jobs, attacks, decoder training) and, for
the command line, a bar on a terminal (silence otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ProgressEvent:
    """Step `step` of `total`, with the latest preview image and the metrics so far."""

    step: int
    total: int
    preview: np.ndarray | None = None  # uint8 (H, W, 3) latest reconstruction of image 0
    metrics: dict[str, float] = field(default_factory=dict)
    phase: str = ""  # what the step counts, e.g. "training decoder" or "optimising"


ProgressFn = Callable[[ProgressEvent], None]


def terminal_progress(label: str) -> Callable[[int, int], None]:
    """A (done, total) callback drawing a tqdm bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return lambda done, total: None
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(done - b.n)
        if done >= total:
            b.close()

    return update
