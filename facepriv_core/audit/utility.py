"""Utility the way the authorised service sees it: verification accuracy on the protected wire.

An audit already holds the service's embeddings of every protected face
(`Protected.utility_embedding`), so it runs the same protocol as `facepriv verify --defence`
(balanced same/different pairs from `datasets.make_pairs`, LFW-style k-fold threshold,
`verification.verify_embeddings`) on them, and on the clean embeddings for reference.
"""

from __future__ import annotations

import numpy as np

from facepriv_core.audit.spec import Estimate

#: Same-person pairs sampled at most (as `facepriv verify`).
PAIRS = 1500
#: Folds of the protocol; fewer when the faces give fewer pairs of a kind.
FOLDS = 10


def verification_accuracy(embeddings: np.ndarray, identities: np.ndarray, seed: int = 0
                          ) -> tuple[Estimate | None, str]:
    """(accuracy with a 95% interval over folds, how it was measured) or (None, why not)."""
    from facepriv_core import datasets, verification
    from facepriv_core.datasets import DatasetError

    ids = np.asarray(identities)
    people = len(np.unique(ids))
    if people < 2:
        return None, (f"skipped: verification needs at least 2 identities, these faces have "
                      f"{people}")
    try:
        pairs, same = datasets.make_pairs(ids, PAIRS, seed=seed)
    except DatasetError:
        return None, ("skipped: no identity has two photos, so no same-person pair can be "
                      "formed (audit a dataset with repeated people, e.g. olivetti)")
    folds = int(min(FOLDS, same.sum(), (~same).sum()))
    if folds < 2:
        return None, f"skipped: only {int(same.sum())} same-person pairs (2 needed)"
    r = verification.verify_embeddings(np.asarray(embeddings, dtype=np.float64), pairs, same,
                                       folds=folds, seed=seed)
    half = 1.96 * r.accuracy_std / np.sqrt(folds)
    est = Estimate(mean=r.accuracy, ci_low=max(0.0, r.accuracy - half),
                   ci_high=min(1.0, r.accuracy + half), n=r.pairs)
    return est, (f"{r.pairs} pairs ({int(same.sum())} same-person), {folds}-fold threshold, "
                 "through the defence's authorised service")
