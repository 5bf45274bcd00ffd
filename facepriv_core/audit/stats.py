"""Statistics over per-image rows: the percentile bootstrap of `facepriv_core.estimates`.

They live there, outside the audit package, so that the verdict engine (which the audit
imports) can use the same intervals without importing the audit back.
"""

from __future__ import annotations

from facepriv_core.estimates import Estimate, bootstrap_ci

__all__ = ["Estimate", "bootstrap_ci"]
