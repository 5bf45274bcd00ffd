"""Privacy/utility curve data from a sweep, the same for every front end (Streamlit, Gradio,
reports): which axis is which, per-point values, the "no defence" point and chance level.

Default x: the authorised service's verification accuracy on the protected wire (utility the
way the service gets it), falling back to utility cosine when the faces cannot form
verification pairs. Default y: the strongest *unauthorised* recogniser's rank-1 (identity
attack), else a reconstruction's SRRA, so y never restates x.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from facepriv_core.audit.runner import SweepPoint, SweepResult

AUTHORISED = "dlib-resnet"
X_LABELS = {
    "verification_accuracy": "authorised service's verification accuracy",
    "utility_cosine": "utility cosine (service embedding vs clean)",
}


Y_LABELS = {
    "strongest_rank1": "strongest unauthorised recogniser's rank-1",
    "srra": "SRRA (reconstructions recognised)",
    "rank1": "authorised recogniser's rank-1",
}


class CurvePoint(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    label: str
    x: float
    y: float
    detail: str = ""


class Curve(BaseModel):
    """One defence's curve: x/y keys and labels, points in sweep order, references."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    defence: str
    param: str
    x_metric: str
    y_metric: str
    x_label: str
    y_label: str
    points: list[CurvePoint]
    reference: CurvePoint | None = None
    chance: float | None = None
    chance_label: str = ""
    caution: str = ""


def _x(point: SweepPoint, key: str) -> float:
    return float(point.utility.get(key, np.nan))


def _strongest_rank1(point: SweepPoint) -> tuple[float, str]:
    ident = point.attacks.get("identity", {})
    others = {k.split("@", 1)[1]: v for k, v in ident.items()
              if k.startswith("rank1@") and k != f"rank1@{AUTHORISED}"}
    if not others:
        return float("nan"), ""
    name = max(others, key=lambda k: others[k])
    return float(others[name]), name


def _rule(point: SweepPoint, attack: str, metric: str) -> tuple[float, float]:
    """(value, threshold) of a verdict rule at a point, NaNs when absent."""
    v = point.verdicts.get(attack)
    for o in (v.rules if v is not None else []):
        if o.metric == metric:
            return o.value, o.threshold
    return float("nan"), float("nan")


def _y_metric(sweep: SweepResult) -> tuple[str, str]:
    """(key, label): 'identity.strongest_rank1' when an unauthorised recogniser ran, else the
    first attack with an SRRA rule ('ATTACK.srra'), else identity.rank1."""
    first = sweep.points[0] if sweep.points else None
    if first is not None and np.isfinite(_strongest_rank1(first)[0]):
        return "identity.strongest_rank1", "strongest unauthorised recogniser's rank-1"
    for attack in (first.verdicts if first is not None else {}):
        if first is not None and np.isfinite(_rule(first, attack, "srra")[0]):
            return f"{attack}.srra", f"{attack} SRRA (reconstructions recognised)"
    return "identity.rank1", "authorised recogniser's rank-1"


def _y(point: SweepPoint, key: str) -> tuple[float, str, float]:
    """(y, which recogniser or '', chance threshold) for one point."""
    attack, _, metric = key.partition(".")
    if key == "identity.strongest_rank1":
        value, name = _strongest_rank1(point)
        return value, name, _rule(point, "identity", f"rank1@{name}")[1]
    if metric == "srra":
        value, chance = _rule(point, attack, "srra")
        return value, "", chance
    value = float(point.attacks.get(attack, {}).get(metric, np.nan))
    chance = _rule(point, attack, metric)[1]
    if not np.isfinite(chance) and "@" not in metric:  # 'rank1' is judged as 'rank1@MODEL'
        v = point.verdicts.get(attack)
        chance = next((o.threshold for o in (v.rules if v else [])
                       if o.metric.startswith(f"{metric}@")), float("nan"))
    return value, "", chance


def curve_data(sweep: SweepResult, x: str | None = None, y: str | None = None) -> Curve:
    """The curve to draw for one sweep. `x` is a utility key (default: verification accuracy
    when every point has it, else utility cosine); `y` is 'attack.metric' (default above)."""
    caution = ""
    if x is None:
        x = ("verification_accuracy"
             if sweep.points and all("verification_accuracy" in p.utility for p in sweep.points)
             else "utility_cosine")
        if x == "utility_cosine":
            why = next((p.notes.get("verification_accuracy", "") for p in sweep.points), "")
            caution = ("x is utility cosine, not verification accuracy"
                       + (f" ({why})" if why else "") + ". ")
    y_key, y_label = _y_metric(sweep)
    if y is not None and y != y_key:
        y_key, y_label = y, Y_LABELS.get(y.partition(".")[2], y)
    points = []
    chances = []
    for p in sweep.points:
        yv, who, chance = _y(p, y_key)
        chances.append(chance)
        points.append(CurvePoint(label=f"{sweep.param}={p.value}", x=_x(p, x), y=yv,
                                 detail=who))
    ref = None
    if sweep.reference is not None:
        ry, who, _ = _y(sweep.reference, y_key)
        rx = _x(sweep.reference, x)
        ref = CurvePoint(label="no defence", x=rx, y=ry, detail=who)
    finite = [c for c in chances if np.isfinite(c)]
    if y is None and y_key == "identity.rank1":
        caution += ("Only the authorised recogniser ran, so y is its rank-1; run identity "
                    "with other recognisers for the unauthorised view. ")
    if sweep.points and not finite:
        caution += "No verdict rule for this y metric: no chance level to draw. "
    faces = max((v.n for p in sweep.points for v in p.verdicts.values()), default=0)
    if 0 < faces < 10:
        caution += (f"Only {faces} face{'s' if faces != 1 else ''}: a curve over so few "
                    "faces says little; sweep a dataset sample. ")
    return Curve(defence=sweep.defence, param=sweep.param, x_metric=x, y_metric=y_key,
                 x_label=X_LABELS.get(x, x), y_label=y_label, points=points, reference=ref,
                 chance=float(np.mean(finite)) if finite else None,
                 chance_label="chance" if y_key.endswith("rank1") else "chance acceptance",
                 caution=caution.strip())


def curves_data(sweeps: dict[str, SweepResult], **kwargs: Any) -> list[Curve]:
    """One curve per labelled sweep (several defences on one chart share the axes of the
    first: pass x/y explicitly to force them)."""
    out: list[Curve] = []
    for sweep in sweeps.values():
        if out and "x" not in kwargs:
            kwargs = {**kwargs, "x": out[0].x_metric, "y": out[0].y_metric}
        out.append(curve_data(sweep, **kwargs))
    return out
