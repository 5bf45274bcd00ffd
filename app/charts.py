"""Plotly figures shared by the pages and the report: privacy/utility curves with distinct
colours per series, a title, readable labels and the reference points that give them meaning
(no defence, chance level); bar charts of benchmark tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from facepriv_core.audit import SweepResult

#: Okabe-Ito: distinct for colour-blind readers too (the issue's two near-identical blues).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")
#: Utility axes in order of preference: what the authorised service really achieves first.
UTILITY_PREFERENCE = ("verification_accuracy", "utility_accuracy", "match_rate",
                      "utility_cosine")
AUTHORISED = ("dlib-resnet", "dlib-native")
STRONGEST = "identity.rank1 (strongest unauthorised)"
AXIS_LABELS = {
    "verification_accuracy": "authorised service's verification accuracy",
    "utility_cosine": "utility cosine (service embedding vs clean)",
    STRONGEST: "strongest unauthorised recogniser's rank-1",
}


def axis_label(key: str) -> str:
    """A readable axis label: ours for the defaults, else the engine's metric title."""
    if key in AXIS_LABELS:
        return AXIS_LABELS[key]
    try:
        from facepriv_core import metric_docs  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return key
    return f"{metric_docs.doc(key).title} ({key})"


@dataclass
class Curve:
    """One sweep with the references measured on the same faces."""

    label: str
    sweep: SweepResult
    reference: dict[str, float]  # the "no defence" point: metric -> value
    chance_rank1: float | None  # 1 / identities of the faces swept


def point_metrics(utility: Mapping[str, float], attack_metrics: Mapping[str, Mapping[str, float]]
                  ) -> dict[str, float]:
    """Flat 'attack.metric' and utility values of one point, plus the strongest unauthorised
    recogniser's rank-1 (the max over recognisers other than the authorised one)."""
    flat: dict[str, float] = dict(utility)
    for attack, ms in attack_metrics.items():
        flat.update({f"{attack}.{m}": v for m, v in ms.items()})
    ranks = [v for m, v in attack_metrics.get("identity", {}).items()
             if m.startswith("rank1@") and m.split("@", 1)[1] not in AUTHORISED]
    if ranks:
        flat[STRONGEST] = max(ranks)
    return flat


def axis_names(curves: Sequence[Curve]) -> tuple[list[str], list[str]]:
    """(utility names, privacy names) present in every point of the curves, defaults first."""
    flats = [point_metrics(p.utility, p.attacks) for c in curves for p in c.sweep.points]
    common = set.intersection(*(set(f) for f in flats)) if flats else set()
    utility_keys = {k for c in curves for p in c.sweep.points for k in p.utility}
    xs = [u for u in UTILITY_PREFERENCE if u in common]
    xs += sorted(k for k in common if k in utility_keys and k not in xs)
    ys = [STRONGEST] if STRONGEST in common else []
    ys += sorted(k for k in common if k not in utility_keys and k != STRONGEST)
    return xs, ys


def sweep_figure(curves: Sequence[Curve], x_name: str, y_name: str,
                 title: str | None = None) -> go.Figure:
    """Privacy (y) against utility (x), one coloured labelled line per sweep, with the
    no-defence point and the chance rank-1 as references."""
    fig = go.Figure()
    for i, c in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        flats = [point_metrics(p.utility, p.attacks) for p in c.sweep.points]
        fig.add_trace(go.Scatter(
            x=[f.get(x_name) for f in flats], y=[f.get(y_name) for f in flats],
            mode="lines+markers+text", name=c.label, line={"color": colour, "width": 2},
            marker={"size": 9, "color": colour}, textposition="top right",
            textfont={"size": 12, "color": colour},
            text=[f"{c.sweep.param}={p.value}" for p in c.sweep.points]))
    refs = [c.reference for c in curves if c.reference]
    if refs and x_name in refs[0] and y_name in refs[0]:
        fig.add_trace(go.Scatter(x=[refs[0][x_name]], y=[refs[0][y_name]], mode="markers+text",
                                 name="no defence", text=["no defence"],
                                 textposition="bottom left",
                                 marker={"symbol": "star", "size": 16, "color": "#444"}))
    chance = next((c.chance_rank1 for c in curves if c.chance_rank1), None)
    if chance is not None and "rank1" in y_name:
        fig.add_hline(y=chance, line={"dash": "dash", "color": "#888"},
                      annotation_text=f"chance rank-1 = {chance:.3f}",
                      annotation_position="bottom right")
    x_label, y_label = axis_label(x_name), axis_label(y_name)
    fig.update_layout(
        title={"text": title or f"Privacy vs utility: {y_label} (lower = more private) "
                                f"against {x_label}", "font": {"size": 16}},
        xaxis_title=x_label, yaxis_title=y_label, height=540, font={"size": 13},
        legend={"orientation": "h", "y": -0.22}, margin={"t": 70})
    return fig


def table_figure(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 title: str) -> go.Figure:
    """Grouped bars: one group per table column, one bar per row (defence with params)."""
    fig = go.Figure()
    for i, row in enumerate(rows):
        label = f"{row.get('defence')}" + (f" ({row['params']})" if row.get("params") and
                                           row["params"] != "defaults" else "")
        fig.add_trace(go.Bar(name=label, x=list(columns),
                             y=[row.get(c) if isinstance(row.get(c), int | float) else None
                                for c in columns],
                             marker_color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(barmode="group", title={"text": title, "font": {"size": 16}}, height=460,
                      yaxis_title="value", font={"size": 13},
                      legend={"orientation": "h", "y": -0.25})
    return fig
