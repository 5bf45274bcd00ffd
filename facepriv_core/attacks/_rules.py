"""Verdict rules the attack families share: identity, reconstruction, attributes.

Each function resolves an attack's declared headline rules on one result: which per-image
values, which threshold, and where the threshold comes from. Thresholds are baselines a
server gets for free (chance, the majority class, a mean face) or a recogniser's fitted
same-person cosine, so "leaks" means "the attack learns more than a guess".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facepriv_core import metrics
from facepriv_core.attacks.base import AttackCase, AttackResult
from facepriv_core.verdicts import DLIB_FAR_AT_THRESHOLD, Phrasing, Rule

IDENTITY = Phrasing("identity still matches", "identity no longer matches", "recognisers")
RECONSTRUCTION = Phrasing("the face is reconstructed", "no recognisable reconstruction")
ATTRIBUTES = Phrasing("attributes are still read", "attributes are no longer read",
                      "attribute heads")

#: dlib-resnet's same-person cosine, fitted on Olivetti (see attacks.identity).
KAPPA = 0.921
#: Different-person pairs among the case's originals needed to measure chance acceptance on
#: them rather than use the Olivetti figure.
MIN_DIFFERENT_PAIRS = 100
#: Faces sampled (evenly) at most for that measurement: memory stays bounded on big audits.
MAX_FAR_FACES = 1000
#: Faces needed before a majority-class rate of the case itself is a fair baseline.
MIN_FACES_FOR_MAJORITY = 10


def _ids(case: AttackCase) -> np.ndarray:
    n = case.original.shape[0]
    return np.asarray(case.identities) if case.identities is not None else np.arange(n)


def _column(result: AttackResult, key: str) -> list[float]:
    return [float(row.get(key, np.nan)) for row in result.per_image]


def gallery_chance(ids: np.ndarray, naive: bool) -> float:
    """Chance rank-1 of a random guess over the gallery, from each person's photo count
    (O(N), no N x N mask; equal to `verdicts.chance_rank1` over the same masks). Naive: a
    probe's own original is hidden where its person has another photo
    (`scenarios.gallery_exclusion`). Parrot / retrained: the own photo is always hidden,
    and the chance is taken over the probes whose person has another photo (1.0 if none)."""
    n = len(ids)
    _, inverse, counts = np.unique(np.asarray(ids), return_inverse=True, return_counts=True)
    photos = counts[inverse.ravel()].astype(np.int64)
    if naive:
        hidden = (photos >= 2).astype(np.int64)
        return float(np.mean((photos - hidden) / np.maximum(n - hidden, 1)))
    has = photos >= 2
    return float(np.mean((photos[has] - 1) / max(n - 1, 1))) if has.any() else 1.0


def identity_rules(case: AttackCase, result: AttackResult) -> list[Rule]:
    """Per recogniser: rank-1 vs chance when the gallery has several people, else the cosine
    of the protected face to its original vs the recogniser's same-person threshold. On
    feature/embedding wires only the authorised service matches: that is utility."""
    ids = _ids(case)
    chance = gallery_chance(ids, result.details.get("scenario", "naive") == "naive")
    service_only = result.details.get("probe") == "authorised service embedding"
    thresholds: dict[str, Any] = result.details.get("thresholds", {})
    rules = []
    for name in result.details.get("recognisers", []):
        if chance < 1.0:
            rules.append(Rule(
                metric=f"rank1@{name}", label="rank-1", values=_column(result, f"rank1@{name}"),
                threshold=chance, threshold_name="chance",
                threshold_source=f"chance rank-1 for this gallery of {len(ids)} faces of "
                                 f"{len(np.unique(ids))} people (1/identities when each "
                                 "person has one photo)",
                subject=name, utility=service_only))
            continue
        t = thresholds.get(name, {})
        if t.get("value") is None:
            continue
        rules.append(Rule(
            metric=f"cosine@{name}", label="cosine to the original",
            values=_column(result, f"cosine@{name}"), threshold=float(t["value"]),
            threshold_name="same-person threshold",
            threshold_source=f"{name} same-person cosine, {t.get('source', 'model card')}",
            subject=name, utility=service_only))
    return rules


def chance_acceptance(case: AttackCase) -> tuple[float, str]:
    """The share of different-person pairs dlib-resnet accepts at KAPPA: measured on the
    case's originals when they hold enough such pairs, else the Olivetti figure."""
    ids = _ids(case)
    pick = np.linspace(0, len(ids) - 1, min(len(ids), MAX_FAR_FACES)).round().astype(int)
    ids = ids[pick]
    different = ids[:, None] != ids[None, :]
    iu = np.triu_indices(len(ids), 1)
    if int(different[iu].sum()) >= MIN_DIFFERENT_PAIRS:
        e = case.original_embedding("dlib-resnet").float().cpu().numpy()[pick]
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        cos = (e @ e.T)[iu][different[iu]]
        return (float(np.mean(cos >= KAPPA)),
                f"dlib-resnet false accept rate at {KAPPA} on {len(cos)} different-person "
                "pairs of these originals")
    return (DLIB_FAR_AT_THRESHOLD,
            f"dlib-resnet false accept rate at {KAPPA} on 1800 different-person Olivetti pairs")


def mean_face_ssim(case: AttackCase, limit: int = 200) -> tuple[float, str]:
    """SSIM a server gets without attacking: per face, the mean of the *other* originals
    (leave-one-out); with a single face, a mid-grey image."""
    from facepriv_core.faces import tensor_to_chips

    chips = tensor_to_chips(case.original.detach().cpu())
    n = len(chips)
    if n < 2:
        grey = np.full_like(chips[0], 128)
        return metrics.ssim(chips[0], grey), "SSIM of a mid-grey image (one face: no mean face)"
    total = chips.astype(np.float64).sum(axis=0)
    picks = np.linspace(0, n - 1, min(n, limit)).round().astype(int)
    values = [metrics.ssim(chips[i], ((total - chips[i]) / (n - 1)).round().astype(np.uint8))
              for i in picks]
    return float(np.mean(values)), (f"SSIM of the mean of the other {n - 1} faces "
                                    "(leave-one-out mean face)")


def reconstruction_rules(case: AttackCase, result: AttackResult,
                         baseline_ssim: tuple[float, str] | None = None) -> list[Rule]:
    """A reconstruction leaks when dlib-resnet recognises it more often than chance (SRRA,
    PMT's successful reconstruction rate) or it looks more like the face than a mean face."""
    rules = []
    if any("cosine" in row for row in result.per_image):
        far, source = chance_acceptance(case)
        srra = [float(c >= KAPPA) if np.isfinite(c) else np.nan
                for c in _column(result, "cosine")]
        rules.append(Rule(metric="srra", label="SRRA",
                          values=srra, threshold=far, threshold_name="chance acceptance",
                          threshold_source=source, subject="identity"))
    if any("ssim" in row for row in result.per_image):
        t, source = baseline_ssim if baseline_ssim is not None else mean_face_ssim(case)
        rules.append(Rule(metric="ssim", label="SSIM", values=_column(result, "ssim"),
                          threshold=t, threshold_name="mean-face SSIM", threshold_source=source,
                          subject="appearance"))
    return rules


def class_baseline(classes: np.ndarray, k: int) -> tuple[float, str]:
    """Majority-class rate of the originals' predictions, or 1/k with too few faces."""
    from facepriv_core.verdicts import majority_rate

    if len(classes) >= MIN_FACES_FOR_MAJORITY:
        return majority_rate(classes), (f"majority-class rate of the originals' predictions "
                                        f"({len(classes)} faces)")
    return 1.0 / k, f"uniform chance 1/{k} (fewer than {MIN_FACES_FOR_MAJORITY} faces)"
