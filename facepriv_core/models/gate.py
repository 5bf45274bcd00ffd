"""The zoo gate: a model is offered only if the project has measured that it does its job.

A recogniser must separate people: verification on Olivetti and on SFHQ pairs of augmented
views of one crop (AUC, 10-fold accuracy) and a mean cosine of different people below
`MAX_DIFF_COSINE` (a model whose embeddings are all nearly parallel "matches" everyone). An
attribute model must beat chance clearly on SFHQ's weak labels: the lower end of the 95 %
Wilson interval of its accuracy above the majority-label rate (gender, race, emotion), or the
lower end of the 95 % interval of its Spearman correlation with the labelled age above
`MIN_AGE_SPEARMAN_LO`. The figures are measured by `python bench/zoo_gate.py --write`
(`gate_measure`) and recorded in `GATE_FILE` beside the model cards; this module only reads
and judges them, so the registry can apply the gate without loading any weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

GATE_FILE_NAME = "zoo_gate.json"

#: Recognisers: bounds on every pair set (Olivetti, SFHQ augmented views).
MIN_AUC = 0.85
MIN_ACCURACY = 0.75
#: dlib-resnet, the strongest model here, sits near 0.8 on Olivetti (its embeddings are not
#: centred); a model whose different people average above this cannot threshold anyone apart.
MAX_DIFF_COSINE = 0.95
#: Attributes: margin over chance is the interval's lower end, see judge_attribute.
MIN_AGE_SPEARMAN_LO = 0.3
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound for small n and extreme rates)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def spearman_interval(rho: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of a Spearman correlation by Fisher's z (Bonett-Wright variance)."""
    if n <= 3:
        return (-1.0, 1.0)
    r = max(-0.999999, min(0.999999, rho))
    se = math.sqrt((1 + r * r / 2) / (n - 3))
    centre = math.atanh(r)
    return (math.tanh(centre - z * se), math.tanh(centre + z * se))


def judge_recogniser(figures: dict[str, Any]) -> str | None:
    """None when a recogniser's figures pass, else the reason (one sentence)."""
    problems = []
    for set_name in ("olivetti", "sfhq"):
        f = figures.get(set_name)
        if not isinstance(f, dict):
            problems.append(f"no {set_name} figures")
            continue
        if f["diff_mean_cosine"] > MAX_DIFF_COSINE:
            problems.append(f"different people's mean cosine {f['diff_mean_cosine']:.4f} > "
                            f"{MAX_DIFF_COSINE} on {set_name}")
        if f["auc"] < MIN_AUC:
            problems.append(f"verification AUC {f['auc']:.3f} < {MIN_AUC} on {set_name}")
        if f["accuracy"] < MIN_ACCURACY:
            problems.append(f"verification accuracy {f['accuracy']:.3f} < {MIN_ACCURACY} on "
                            f"{set_name}")
    return "; ".join(problems) or None


def judge_attribute(figures: dict[str, Any]) -> str | None:
    """None when an attribute model beats chance clearly on SFHQ's weak labels, else why not."""
    if figures.get("metric") == "spearman":
        lo = figures["ci"][0]
        if lo <= MIN_AGE_SPEARMAN_LO:
            return (f"age does not follow SFHQ's labelled ages: Spearman {figures['value']:.2f} "
                    f"(95 % lower bound {lo:.2f} <= {MIN_AGE_SPEARMAN_LO}, n={figures['n']})")
        return None
    lo, chance = figures["ci"][0], figures["chance"]
    if lo <= chance:
        return (f"{figures['task']} accuracy {figures['value']:.2f} on SFHQ's weak labels does "
                f"not beat chance {chance:.2f} clearly (95 % lower bound {lo:.2f}, "
                f"n={figures['n']})")
    return None


def judge(record: dict[str, Any]) -> str | None:
    """None when a gate record passes, else the reason."""
    if record.get("task") == "recognition":
        return judge_recogniser(record)
    return judge_attribute(record)


def gate_file(cards_dir: Path) -> Path:
    return cards_dir / GATE_FILE_NAME


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """The recorded figures by model name ({} when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    return models if isinstance(models, dict) else {}


def write_records(path: Path, records: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write the gate file: bounds and provenance first, then one record per model."""
    doc = {
        "bounds": {"min_auc": MIN_AUC, "min_accuracy": MIN_ACCURACY,
                   "max_diff_mean_cosine": MAX_DIFF_COSINE,
                   "attribute": "95 % Wilson lower bound of accuracy > majority-label rate",
                   "min_age_spearman_lower_bound": MIN_AGE_SPEARMAN_LO},
        **meta,
        "models": {name: records[name] for name in sorted(records)},
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")


def reason_for(name: str, task: str, records: dict[str, dict[str, Any]]) -> str | None:
    """Why the gate refuses `name` (None when it passes). Detection models are not gated."""
    if task == "detection":
        return None
    record = records.get(name)
    if record is None:
        return ("no zoo-gate figures are recorded for this model; measure them with "
                "`python bench/zoo_gate.py --write`")
    why = judge(record)
    return None if why is None else f"fails the zoo gate: {why}"


def summary_line(record: dict[str, Any]) -> str:
    """One line of figures for a card or a listing."""
    if record.get("task") == "recognition":
        parts = []
        for set_name in ("olivetti", "sfhq"):
            f = record.get(set_name) or {}
            if f:
                parts.append(f"{set_name}: AUC {f['auc']:.3f}, accuracy {f['accuracy']:.3f}, "
                             f"different-people mean cosine {f['diff_mean_cosine']:.3f} "
                             f"({f['pairs']} pairs)")
        return "; ".join(parts)
    lo, hi = record["ci"]
    if record.get("metric") == "spearman":
        return (f"Spearman with labelled age {record['value']:.2f} [{lo:.2f}, {hi:.2f}] "
                f"on {record['n']} SFHQ faces")
    return (f"{record['task']} accuracy {record['value']:.2f} [{lo:.2f}, {hi:.2f}] vs chance "
            f"{record['chance']:.2f} on {record['n']} SFHQ faces")
