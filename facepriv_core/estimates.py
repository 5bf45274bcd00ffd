"""A mean with its confidence interval, and the bootstrap that gives it.

A leaf module (no FacePriv imports): the audit aggregates per-image rows with it and the
verdict engine decides from the same intervals, so neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator


class Estimate(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    mean: float
    ci_low: float
    ci_high: float
    n: int

    @field_validator("mean", "ci_low", "ci_high", mode="before")
    @classmethod
    def _null_is_nan(cls, v: Any) -> Any:
        """Results saved before NaN survived JSON hold null where a value was undefined."""
        return float("nan") if v is None else v


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
