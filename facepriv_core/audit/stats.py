"""Statistics over per-image rows: percentile bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facepriv_core.audit.spec import Estimate


def bootstrap_ci(values: Sequence[float], rng: np.random.Generator, resamples: int = 1000,
                 level: float = 0.95) -> Estimate:
    """Mean with a percentile bootstrap confidence interval (NaNs ignored)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return Estimate(mean=float("nan"), ci_low=float("nan"), ci_high=float("nan"), n=0)
    mean = float(v.mean())
    if resamples == 0 or len(v) == 1:
        return Estimate(mean=mean, ci_low=mean, ci_high=mean, n=len(v))
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    means = v[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(mean=mean, ci_low=float(lo), ci_high=float(hi), n=len(v))
