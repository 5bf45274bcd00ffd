"""Face verification protocol: embeddings, cosine scores, LFW-style 10-fold threshold, TAR@FAR.

The identity attacks stand on this: a protected face "matches" when its cosine to the
original clears the threshold fitted here on clean pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

from facepriv_core.cancel import check_cancel
from facepriv_core.errors import FacePrivError

Progress = Callable[[int, int], None]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


#: Pairs scored at once by `pair_cosine`: two (chunk, D) float64 gathers, not (P, D) ones
#: (20k + 20k pairs of 1024-d faceres embeddings were ~1 GB at once).
PAIR_CHUNK = 4096


def pair_cosine(embeddings: np.ndarray, pairs: np.ndarray, chunk: int = PAIR_CHUNK
                ) -> np.ndarray:
    """(P,) cosine of each pair (i, j) of rows of `embeddings`, `chunk` pairs at a time (the
    same numbers as `cosine` on the gathered rows: each row is computed alike)."""
    pairs = np.asarray(pairs)
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        out[start:start + chunk] = cosine(embeddings[part[:, 0]], embeddings[part[:, 1]])
    return out


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold (score >= t means 'same') maximising accuracy on these pairs."""
    order = np.argsort(scores)
    s, y = scores[order], same[order].astype(int)
    # Accuracy when thresholding just above position k: negatives below, positives at/above.
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])
    pos_at_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    acc = (neg_below + pos_at_above) / len(y)
    k = int(np.argmax(acc))
    if k == 0:
        return float(s[0] - 1e-6)
    if k == len(s):
        return float(s[-1] + 1e-6)
    return float((s[k - 1] + s[k]) / 2)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the largest false accept rate not above `far`."""
    fpr, tpr, _ = roc_curve(same.astype(int), scores)
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


@dataclass(frozen=True)
class VerificationResult:
    accuracy: float
    accuracy_std: float
    threshold: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    auc: float
    pairs: int
    #: the client key's fingerprint and kind when a keyed defence protected the faces
    key: dict[str, Any] | None = None
    #: faces left out because the defence's service was trained on their people
    excluded_faces: int = 0
    #: cross-validation folds used (fewer than asked when a class has fewer pairs)
    folds: int = 10

    def as_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"key": self.key} if self.key is not None else {}
        if self.excluded_faces:
            extra["faces_excluded_seen_by_service"] = self.excluded_faces
        return {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "tar_at_far_1e-2": self.tar_at_far_1e2,
            "tar_at_far_1e-3": self.tar_at_far_1e3,
            "auc": self.auc,
            "threshold": self.threshold,
            "pairs": self.pairs,
            "folds": self.folds,
            **extra,
        }


class VerificationDataError(FacePrivError, ValueError):
    """Too few pairs of one kind (same / different person) to run the protocol."""


def evaluate_scores(scores: np.ndarray, same: np.ndarray, folds: int = 10, seed: int = 0
                    ) -> VerificationResult:
    """LFW protocol: per fold, fit the threshold on the other folds and score the held-out one."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    smallest = int(min(same.sum(), (~same).sum()))
    if smallest < 2:
        raise VerificationDataError(
            f"verification needs at least 2 same-person and 2 different-person pairs, got "
            f"{int(same.sum())} and {int((~same).sum())}: use more faces (--limit) or a "
            "dataset with several photos per person")
    folds = max(2, min(folds, smallest))  # each fold needs a pair of each kind
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs, thresholds = [], []
    for train, test in splitter.split(scores, same):
        t = best_threshold(scores[train], same[train])
        accs.append(np.mean((scores[test] >= t) == same[test]))
        thresholds.append(t)
    return VerificationResult(
        accuracy=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        threshold=float(np.mean(thresholds)),
        tar_at_far_1e2=tar_at_far(scores, same, 1e-2),
        tar_at_far_1e3=tar_at_far(scores, same, 1e-3),
        auc=float(roc_auc_score(same.astype(int), scores)),
        pairs=len(scores),
        folds=folds,
    )


def verify_embeddings(embeddings: np.ndarray, pairs: np.ndarray, same: np.ndarray,
                      folds: int = 10, seed: int = 0) -> VerificationResult:
    scores = pair_cosine(embeddings, pairs)
    return evaluate_scores(scores, same, folds=folds, seed=seed)


def embed_chips(model: object, chips: np.ndarray, device: str | torch.device = "cpu",
                batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
    """Embeddings (N, D) of uint8 (N, 150, 150, 3) dlib chips with a recognition model."""
    from facepriv_core.embedding import embed_numpy

    return embed_numpy(model, chips, batch_size, device, progress)


#: Defence params that make or are a client secret: never echoed into outputs.
SECRET_PARAM_NAMES = frozenset({"shuffle_seed", "key_seed", "key", "seed_key"})


def public_params(params: Any) -> dict[str, Any]:
    """A defence's params as plain values, without the ones that are (or make) a secret key:
    those named in SECRET_PARAM_NAMES or marked `json_schema_extra={"secret": True}`."""
    fields = type(params).model_fields
    out = {}
    for name, value in params.model_dump(mode="json").items():
        extra = fields[name].json_schema_extra if name in fields else None
        marked = isinstance(extra, dict) and bool(extra.get("secret"))
        if name not in SECRET_PARAM_NAMES and not marked:
            out[name] = value
    return out


def service_embeddings(chips: np.ndarray, defence: Any, params: Any, recogniser: Any,
                       device: str | torch.device = "cpu", batch_size: int = 32, seed: int = 0,
                       progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                       reproducible_key: bool = False, key_source: Any = None
                       ) -> tuple[np.ndarray, dict[str, Any] | None]:
    """What the defence's authorised service computes from the protected wire of each chip,
    and the client key's description (fingerprint, kind; None when keyless): protect in
    batches with one rng and one client key source for the run, as an audit does, then
    utility_embedding. The key is `key_source` when given, else secret unless
    `reproducible_key` (then derived from seed)."""
    from facepriv_core.defences.base import ProtectionCancelled
    from facepriv_core.defences.keys import key_info
    from facepriv_core.defences.keys import key_source as make_source
    from facepriv_core.faces.types import chips_to_tensor

    rng = torch.Generator(device=torch.device(device)).manual_seed(seed)
    source = key_source if key_source is not None else make_source(reproducible_key, seed)
    out, keys = [], []
    for start in range(0, len(chips), batch_size):
        check_cancel(cancel, ProtectionCancelled, "verification cancelled")
        x = chips_to_tensor(chips[start:start + batch_size], device)
        protected = defence.protect_keyed(x, params, rng, source, cancel=cancel)
        keys.append(protected.key)
        with torch.no_grad():
            out.append(protected.utility_embedding(recogniser).detach().float().cpu().numpy())
        if progress:
            progress(min(start + batch_size, len(chips)), len(chips))
    info = key_info(keys)
    emb = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    return emb, (info.model_dump() if info is not None else None)


def verify_defence(chips: np.ndarray, identities: np.ndarray, defence: Any, params: Any,
                   recogniser: Any, *, pairs: int | None = 1500, folds: int = 10, seed: int = 0,
                   device: str | torch.device = "cpu", batch_size: int = 32,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                   prepare: bool = True, prepare_progress: Progress | None = None,
                   reproducible_key: bool = False, dataset_name: str | None = None
                   ) -> VerificationResult:
    """The verification protocol on the protected wire, as the authorised service sees it.

    Every face (enrolment and probe alike) reaches the service only as the defence's wire; the
    service's embedding is `Protected.utility_embedding(recogniser)`; pairs and folds are those
    of `verify` on the same identities and seed, so the accuracy compares with the clean one.
    With `prepare`, a service that must be trained first (PPFR-FD) is trained and cached;
    without it, such a service runs untrained and says so in its Protected. Faces of people
    the service was trained on (`defence.service_seen`, for `dataset_name`) are left out, so
    the accuracy is on people it never saw.
    """
    from facepriv_core import datasets

    if prepare:
        from facepriv_core.train.services import prepare_service

        prepare_service(defence, params, progress=prepare_progress, cancel=cancel)
    identities = np.asarray(identities)
    seen = defence.service_seen(params).get(dataset_name, []) if dataset_name else []
    fresh = ~np.isin(identities, seen)
    chips, identities = chips[fresh], identities[fresh]
    emb, key = service_embeddings(chips, defence, params, recogniser, device=device,
                                  batch_size=batch_size, seed=seed, progress=progress,
                                  cancel=cancel, reproducible_key=reproducible_key)
    pair_idx, same = datasets.make_pairs(identities, pairs, seed=seed)
    result = verify_embeddings(emb, pair_idx, same, folds=folds, seed=seed)
    return dataclasses.replace(result, key=key, excluded_faces=int((~fresh).sum()))
