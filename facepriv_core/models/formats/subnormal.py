"""Subnormal (denormal) float32 weights flushed to zero when a model file is read.

Some exported graphs carry thousands of subnormal weights (|w| < 2^-126, e.g. 1332 of the 9408
in the Cydral age network's first convolution). They change no output measurably, but x86
vector units take a slow microcode path for each one: that single convolution ran 100x
slower (527 ms vs 4.7 ms for 32 faces on one core) until they were zeroed.
"""

from __future__ import annotations

import numpy as np

TINY = np.finfo(np.float32).tiny


def flush_subnormal(arr: np.ndarray) -> np.ndarray:
    """`arr` with its float32 subnormals set to 0 (a copy only when there are any)."""
    if arr.dtype != np.float32 or arr.size == 0:
        return arr
    mask = (np.abs(arr) < TINY) & (arr != 0)
    if not mask.any():
        return arr
    out = np.array(arr, copy=True)
    out[mask] = 0.0
    return out
