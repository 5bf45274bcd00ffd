"""Attribute estimation: what off-the-shelf attribute models still read from a protected face.

A defence that hides identity may still leak gender, age, emotion or race to a server that
simply runs public attribute models on what it receives (PMT, Pu et al. 2023, evaluates
this with the cosine between attribute probability vectors, its Eq. 11). Each head's
prediction on the protected face is compared with its prediction on the original.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field

from facepriv_core import metrics, models
from facepriv_core.attacks import register
from facepriv_core.attacks.base import (
    Attack,
    AttackCase,
    AttackParams,
    AttackResult,
    CancelFn,
    ProgressEvent,
    ProgressFn,
    ThreatModel,
    check_cancel,
)

#: Preferred model per attribute head; any other available model of the task is the fallback.
PREFERRED = {"gender": "cydral-gender", "age": "cydral-age", "emotion": "fer-emotion",
             "race": None}


def attribute_models(device: str | torch.device = "cpu") -> dict[str, Any]:
    """{head: loaded model} for every attribute head with an available model here."""
    out = {}
    for head, preferred in PREFERRED.items():
        names = models.available(head)
        if names:
            out[head] = models.get(preferred if preferred in names else names[0], device)
    if not {"gender", "age", "emotion"} & set(out):
        raise models.ModelUnavailableError("no gender, age or emotion model is available")
    return out


@torch.no_grad()
def _predict(heads: dict[str, Any], x: torch.Tensor) -> dict[str, np.ndarray]:
    out = {head: model.probabilities(x).float().cpu().numpy() for head, model in heads.items()}
    if "age" in heads:
        out["years"] = heads["age"].years(x).float().cpu().numpy()
    return out


def _agree(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.argmax(p) == np.argmax(q))


def attribute_rows(original: torch.Tensor, other: torch.Tensor,
                   device: str | torch.device = "cpu") -> list[dict[str, float]]:
    """Per-image attribute agreement of `other` (protected faces, reconstructions) with the
    `original` 150 chips: attr_cossim (mean over heads, and per head as attr_cossim@HEAD),
    gender_flip_rate (0/1), age_abs_error (years), emotion_agreement and race_agreement (0/1).
    Keys are named so that their means are the batch metrics."""
    if original.shape != other.shape:
        raise ValueError(f"shapes differ: {tuple(original.shape)} vs {tuple(other.shape)}")
    heads = attribute_models(device)
    a = _predict(heads, original.to(device))
    b = _predict(heads, other.to(device))
    rows = []
    for i in range(original.shape[0]):
        cos = {f"attr_cossim@{h}": float(metrics.attr_cossim(a[h][i], b[h][i])[0]) for h in heads}
        row = {"attr_cossim": float(np.mean(list(cos.values()))), **cos}
        if "gender" in heads:
            row["gender_flip_rate"] = metrics.gender_flip_rate(a["gender"][i], b["gender"][i])
        if "age" in heads:
            row["age_abs_error"] = metrics.age_abs_error(a["years"][i], b["years"][i])
        if "emotion" in heads:
            row["emotion_agreement"] = metrics.emotion_agreement(a["emotion"][i],
                                                                 b["emotion"][i])
        if "race" in heads:
            row["race_agreement"] = _agree(a["race"][i], b["race"][i])
        rows.append(row)
    return rows


class AttributeParams(AttackParams):
    batch_size: int = Field(32, ge=1, le=512, description="faces per forward pass")


@register("attribute")
class AttributeEstimation(Attack):
    title = "Attribute estimation (gender, age, emotion, race)"
    threat = ThreatModel(
        knows=("wire",),
        sentence="The server runs off-the-shelf gender, age, emotion and race models on the "
                 "image it receives.")
    applies_to = frozenset({"image"})
    Params = AttributeParams

    def run(self, case: AttackCase, params: Any, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        prot = case.protected
        image = prot.image if prot.image is not None else prot.wire
        heads = attribute_models(self.device)
        n, rows = case.original.shape[0], []
        for start in range(0, n, params.batch_size):
            check_cancel(cancel)
            end = min(start + params.batch_size, n)
            rows += attribute_rows(case.original[start:end], image[start:end], self.device)
            if progress:
                means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                progress(ProgressEvent(end, n, prot.preview[0], means))
        details = {"models": {head: model.name for head, model in heads.items()},
                   "missing_heads": sorted(set(PREFERRED) - set(heads)),
                   "target": "protected image"}
        return AttackResult(self.name, self.threat, rows, details=details)
