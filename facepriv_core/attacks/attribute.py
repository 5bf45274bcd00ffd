"""Attribute estimation: what off-the-shelf attribute models still read from a protected face.

A defence that hides identity may still leak gender, age, emotion or race to a server that
simply runs public attribute models on what it receives (PMT, Pu et al. 2023, evaluates
this with the cosine between attribute probability vectors, its Eq. 11). Each head's
prediction on the protected face is compared with its prediction on the original.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from pydantic import Field

from facepriv_core import metrics, models
from facepriv_core.attacks import _rules, register
from facepriv_core.attacks.base import (
    Attack,
    AttackCancelled,
    AttackCase,
    AttackParams,
    AttackResult,
    CancelFn,
    ProgressEvent,
    ProgressFn,
    ThreatModel,
    check_cancel,
)
from facepriv_core.embedding import embed_numpy
from facepriv_core.verdicts import Rule

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


def _outputs(head: str, model: Any, x: torch.Tensor) -> torch.Tensor:
    """One forward of an attribute model: its probabilities, and for age the years in the
    last column, from the same pass (the model runs once per batch)."""
    if head != "age":
        return model.probabilities(x)
    both = getattr(model, "probabilities_and_years", None)
    probs, years = both(x) if both is not None else (model.probabilities(x), model.years(x))
    return torch.cat([probs, years.reshape(-1, 1).to(probs)], dim=1)


def predict(heads: dict[str, Any], x: torch.Tensor | np.ndarray, batch: int = 32,
            device: str | torch.device | None = None, cancel: Any = None
            ) -> dict[str, np.ndarray]:
    """{head: (N, classes) probabilities, and 'years'} for faces `x`, in batches."""
    out = {}
    for head, model in heads.items():
        y = embed_numpy(model, x, batch, device, cancel=cancel, error=AttackCancelled,
                        fn=functools.partial(_outputs, head))
        if head == "age":
            out["age"], out["years"] = y[:, :-1], y[:, -1]
        else:
            out[head] = y
    return out


def _agree(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.argmax(p) == np.argmax(q))


def attribute_rows(original: torch.Tensor, other: torch.Tensor,
                   device: str | torch.device = "cpu",
                   originals_out: dict[str, list[float]] | None = None
                   ) -> list[dict[str, float]]:
    """Per-image attribute agreement of `other` (protected faces, reconstructions) with the
    `original` 150 chips: attr_cossim (mean over heads, and per head as attr_cossim@HEAD),
    gender_flip_rate (0/1), age_abs_error (years), emotion_agreement and race_agreement (0/1).
    Keys are named so that their means are the batch metrics. `originals_out`, when given,
    collects the originals' predicted class per head and age in years (for the verdict's
    baselines; never part of the rows)."""
    if original.shape != other.shape:
        raise ValueError(f"shapes differ: {tuple(original.shape)} vs {tuple(other.shape)}")
    heads = attribute_models(device)
    a = predict(heads, original, device=device)
    if originals_out is not None:
        _collect_originals(heads, a, originals_out)
    return _rows(heads, a, predict(heads, other, device=device))


def _collect_originals(heads: dict[str, Any], a: dict[str, np.ndarray],
                       out: dict[str, list[float]]) -> None:
    """The originals' predicted class per head and age in years (the verdict's baselines)."""
    for h in heads:
        out.setdefault(h, []).extend(np.argmax(a[h], axis=1).tolist())
        out.setdefault(f"{h}_classes", [float(a[h].shape[1])])
    if "age" in heads:
        out.setdefault("years", []).extend(np.ravel(a["years"]).tolist())


def _rows(heads: dict[str, Any], a: dict[str, np.ndarray], b: dict[str, np.ndarray]
          ) -> list[dict[str, float]]:
    rows = []
    for i in range(len(next(iter(a.values())))):
        cos = {f"attr_cossim@{h}": float(metrics.attr_cossim(a[h][i], b[h][i])[0])
               for h in heads}
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


#: Per-image agreement key of each classification head (1 = same class as on the original).
AGREEMENT = {"gender": "gender_agreement", "emotion": "emotion_agreement",
             "race": "race_agreement"}


def attribute_baselines(originals: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """What a server gets by guessing, per head: agreement of always answering the originals'
    majority class (1/classes with few faces), and for age the mean absolute error of always
    answering the originals' mean age. Only these summaries leave the attack."""
    out: dict[str, dict[str, Any]] = {}
    for head in AGREEMENT:
        if head in originals:
            k = int(originals[f"{head}_classes"][0])
            rate, source = _rules.class_baseline(np.asarray(originals[head]), k)
            out[head] = {"value": rate, "source": source}
    years = np.asarray(originals.get("years", []), dtype=np.float64)
    if len(years) >= _rules.MIN_FACES_FOR_MAJORITY:
        out["age"] = {"value": float(np.mean(np.abs(years - years.mean()))),
                      "source": f"error of always guessing the originals' mean age "
                                f"({len(years)} faces)"}
    return out


class AttributeParams(AttackParams):
    batch_size: int = Field(32, ge=1, le=512, description="faces per forward pass")


@register("attribute")
class AttributeEstimation(Attack[AttributeParams]):
    title = "Attribute estimation (gender, age, emotion, race)"
    threat = ThreatModel(
        knows=("wire",),
        sentence="The server runs off-the-shelf gender, age, emotion and race models on the "
                 "image it receives.")
    applies_to = frozenset({"image"})
    Params = AttributeParams
    verdict_phrasing = _rules.ATTRIBUTES

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        """Per head: agreement with the original's class above the majority-class rate;
        age: error below that of guessing the mean age (with at least 10 faces)."""
        base = result.details.get("baselines", {})
        rules = []
        for head, key in AGREEMENT.items():
            if head == "gender":
                values = [1.0 - r["gender_flip_rate"] if "gender_flip_rate" in r else np.nan
                          for r in result.per_image]
            else:
                values = [float(r.get(key, np.nan)) for r in result.per_image]
            if head in base and np.isfinite(values).any():
                rules.append(Rule(metric=key, label=f"{head} agreement", values=values,
                                  threshold=float(base[head]["value"]),
                                  threshold_name="guessing",
                                  threshold_source=base[head]["source"], subject=head))
        if "age" in base:
            rules.append(Rule(metric="age_abs_error", label="age error (years)",
                              values=[float(r.get("age_abs_error", np.nan))
                                      for r in result.per_image],
                              threshold=float(base["age"]["value"]), threshold_name="guessing",
                              threshold_source=base["age"]["source"], higher_leaks=False,
                              subject="age"))
        return rules

    def streams(self, params: AttributeParams) -> bool:
        """Rows depend on their own face only; the verdict's baselines (majority class,
        mean age of the originals' predictions) are combined from every shard's
        predictions in `finish`."""
        return True

    def run_shard(self, case: AttackCase, params: AttributeParams,
                  cancel: CancelFn | None = None) -> dict[str, Any]:
        """This shard's rows and the originals' predicted classes / years (`originals`)."""
        prot = case.protected
        image = prot.image if prot.image is not None else prot.wire
        heads = attribute_models(self.device)
        if case.original.shape != image.shape:
            raise ValueError(f"shapes differ: {tuple(case.original.shape)} vs "
                             f"{tuple(image.shape)}")
        check_cancel(cancel)
        clean = predict(heads, case.original, params.batch_size, self.device, cancel)
        originals: dict[str, list[float]] = {}
        _collect_originals(heads, clean, originals)
        seen = predict(heads, image, params.batch_size, self.device, cancel)
        return {"rows": _rows(heads, clean, seen), "originals": originals,
                "models": {head: model.name for head, model in heads.items()}}

    def finish(self, case: AttackCase, parts: list[Any], params: AttributeParams,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None
               ) -> AttackResult:
        rows = [row for part in parts for row in part["rows"]]
        originals: dict[str, list[float]] = {}
        for part in parts:  # in face order, as one _collect_originals over every face
            for key, values in part["originals"].items():
                if key.endswith("_classes"):
                    originals.setdefault(key, values)
                else:
                    originals.setdefault(key, []).extend(values)
        heads = parts[0]["models"]
        if progress:
            means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            progress(ProgressEvent(len(rows), len(rows), case.protected.preview[0], means))
        details = {"models": dict(heads),
                   "missing_heads": sorted(set(PREFERRED) - set(heads)),
                   "target": "protected image",
                   "baselines": attribute_baselines(originals)}
        return AttackResult(self.name, self.threat, rows, details=details)

    def run(self, case: AttackCase, params: AttributeParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        part = self.run_shard(case, params, cancel)
        if progress:
            n = case.original.shape[0]
            progress(ProgressEvent(n // 2, n, case.protected.preview[0], {}))
        return self.finish(case, [part], params, progress, cancel)
