"""Measure the zoo gate's figures for one model (see `gate` for the bounds they are judged by).

Recognisers: Olivetti (400 aligned 64 px greyscale faces, 40 people; balanced same/different
pairs as `facepriv verify`) and SFHQ (full-resolution colour crops: two augmented views of
each crop are a same-person pair, views of different crops a different-person pair).
Attribute models: SFHQ's weak labels (manifest.csv): gender of the labelled teenagers and
adults, age of the age grids, race of the ethnicity grid, expression of the expression grid.
Everything is seeded, so the figures are the same on any machine.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from facepriv_core.models import gate

#: SFHQ crops used for recogniser pairs (the first N aligned crops in manifest order).
SFHQ_RECOGNITION_CROPS = 200
#: Different-person pairs per same-person pair on SFHQ.
SFHQ_DIFF_PER_SAME = 3
#: SFHQ expression rows as the seven-class labels of the emotion models.
EMOTION_OF_SFHQ = {"angry": "angry", "surprised": "surprise", "happy": "happy", "sad": "sad",
                   "neutral": "neutral"}


@dataclass
class GateData:
    """Aligned 150 chips and their labels, built once per gate run."""

    olivetti_chips: np.ndarray
    olivetti_ids: np.ndarray
    sfhq_chips: np.ndarray
    sfhq_rows: list[Any]


def load_data(data_dir: Path) -> GateData:
    """Align Olivetti (no detection) and the SFHQ crops (HOG detection) under `data_dir`."""
    from facepriv_core import datasets
    from facepriv_core.faces import from_aligned

    images, ids = datasets.olivetti_arrays(data_dir / "olivetti" / "olivettifaces.mat")
    oli = np.stack([from_aligned(img).chip150 for img in images])
    sfhq = datasets.load_sfhq(data_dir / "sfhq")
    aligned = datasets.align_dataset(sfhq)
    rows = datasets.read_sfhq_manifest(data_dir / "sfhq")
    return GateData(oli, np.asarray(ids), aligned.chips, [rows[i] for i in aligned.indices])


def augmented_view(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible second photo of the same face: small shift, rotation and scale, mirror,
    lighting and contrast change, slight blur and JPEG compression."""
    img = Image.fromarray(chip)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-6, 6))
    scale = float(rng.uniform(0.93, 1.07))
    dx, dy = (int(v) for v in rng.integers(-5, 6, size=2))
    w, h = img.size
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR, translate=(dx, dy),
                     center=(w / 2, h / 2))
    side = round(w * scale)
    img = img.resize((side, side), Image.Resampling.BICUBIC)
    left = (side - w) // 2
    if side >= w:
        img = img.crop((left, left, left + w, left + h))
    else:
        canvas = Image.new("RGB", (w, h))
        canvas.paste(img, (-left, -left))
        img = canvas
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 0.8))))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(60, 92)))
    return np.asarray(Image.open(buf).convert("RGB"))


def _unit(e: np.ndarray) -> np.ndarray:
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def pair_figures(a: np.ndarray, b: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """Verification figures of unit embeddings a[i] vs b[i] with labels `same`."""
    from facepriv_core.verification import evaluate_scores

    scores = np.sum(a * b, axis=1)
    res = evaluate_scores(scores, same)
    return {"auc": round(res.auc, 4), "accuracy": round(res.accuracy, 4),
            "threshold": round(res.threshold, 5),
            "same_mean_cosine": round(float(scores[same].mean()), 4),
            "diff_mean_cosine": round(float(scores[~same].mean()), 4),
            "pairs": len(scores)}


def measure_recogniser(model: Any, data: GateData, seed: int = 0) -> dict[str, Any]:
    from facepriv_core.datasets import make_pairs
    from facepriv_core.verification import embed_chips

    oli = _unit(embed_chips(model, data.olivetti_chips))
    pairs, same = make_pairs(data.olivetti_ids, 1500, seed=seed)
    olivetti = pair_figures(oli[pairs[:, 0]], oli[pairs[:, 1]], same)

    rng = np.random.default_rng(seed)
    crops = data.sfhq_chips[:SFHQ_RECOGNITION_CROPS]
    view_a = np.stack([augmented_view(c, rng) for c in crops])
    view_b = np.stack([augmented_view(c, rng) for c in crops])
    ea, eb = _unit(embed_chips(model, view_a)), _unit(embed_chips(model, view_b))
    n = len(crops)
    i = np.concatenate([np.arange(n), rng.integers(0, n, size=SFHQ_DIFF_PER_SAME * n)])
    j = np.concatenate([np.arange(n), rng.integers(0, n, size=SFHQ_DIFF_PER_SAME * n)])
    keep = np.concatenate([np.ones(n, bool), i[n:] != j[n:]])
    i, j = i[keep], j[keep]
    sfhq = pair_figures(ea[i], eb[j], i == j)
    return {"task": "recognition", "olivetti": olivetti, "sfhq": sfhq}


def _predict(model: Any, chips: np.ndarray, what: str, batch: int = 32) -> np.ndarray:
    from facepriv_core.faces.types import chips_to_tensor

    out = []
    with torch.no_grad():
        for s in range(0, len(chips), batch):
            x = chips_to_tensor(chips[s:s + batch])
            y = model.years(x) if what == "years" else model.probabilities(x)
            out.append(y.float().cpu().numpy())
    return np.concatenate(out)


def _accuracy_record(task: str, predicted: list[str], truth: list[str]) -> dict[str, Any]:
    hits = int(sum(p == t for p, t in zip(predicted, truth, strict=True)))
    n = len(truth)
    _, counts = np.unique(truth, return_counts=True)
    lo, hi = gate.wilson_interval(hits, n)
    return {"task": task, "metric": "accuracy", "value": round(hits / n, 4),
            "ci": [round(lo, 4), round(hi, 4)], "chance": round(float(counts.max() / n), 4),
            "n": n}


def measure_attribute(model: Any, task: str, data: GateData) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from facepriv_core.models.human_specs import RACE_LABEL_OF_SFHQ

    rows = data.sfhq_rows
    truth: list[str]
    if task == "age":
        idx = [k for k, r in enumerate(rows) if r.age_years is not None]
        years = _predict(model, data.sfhq_chips[idx], "years").ravel()
        ages = np.array([rows[k].age_years for k in idx], dtype=float)
        rho = float(spearmanr(years, ages).statistic)
        lo, hi = gate.spearman_interval(rho, len(idx))
        medians = {f"{a:g}": round(float(np.median(years[ages == a])), 1)
                   for a in np.unique(ages)}
        return {"task": task, "metric": "spearman", "value": round(rho, 4),
                "ci": [round(lo, 4), round(hi, 4)], "n": len(idx),
                "median_years_by_label": medians}
    if task == "gender":
        idx = [k for k, r in enumerate(rows)
               if r.gender and (r.age_years is None or r.age_years >= 16)]
        truth = [rows[k].gender for k in idx]
    elif task == "race":
        idx = [k for k, r in enumerate(rows)
               if r.grid == "SFHQ_variability_ethnicity" and r.ethnicity in RACE_LABEL_OF_SFHQ]
        truth = [RACE_LABEL_OF_SFHQ[rows[k].ethnicity] for k in idx]
    elif task == "emotion":
        idx = [k for k, r in enumerate(rows) if r.expression in EMOTION_OF_SFHQ]
        truth = [EMOTION_OF_SFHQ[rows[k].expression] for k in idx]
    else:
        raise ValueError(f"no gate for task {task!r}")
    probs = _predict(model, data.sfhq_chips[idx], "probabilities")
    labels = list(model.labels)
    predicted = [labels[int(k)] for k in probs.argmax(axis=1)]
    return _accuracy_record(task, predicted, truth)


def measure(name: str, data: GateData, device: str = "cpu") -> dict[str, Any]:
    """The gate record of registry model `name` (loaded without the gate, which it feeds)."""
    from facepriv_core.models import zoo

    model = zoo.get(name, device, gated=False)
    task = zoo.entry(name).task
    if task == "recognition":
        return measure_recogniser(model, data)
    return measure_attribute(model, task, data)
