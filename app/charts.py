"""Plotly figures of the pages: privacy/utility curves drawn from the engine's curve data
(facepriv_core.audit.curves: axes, points, the no-defence point, chance level, cautions) with
distinct colours per series, a title and readable labels; grouped bars of benchmark tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from facepriv_core.audit import Curve

#: Okabe-Ito: distinct for colour-blind readers too (the issue's two near-identical blues).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")


def sweep_figure(curves: Sequence[Curve], names: Sequence[str] | None = None,
                 title: str | None = None) -> go.Figure:
    """Privacy (y) against utility (x): one coloured, labelled line per curve, the no-defence
    point (star) and the chance level (dashed line)."""
    fig = go.Figure()
    for i, c in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(
            x=[p.x for p in c.points], y=[p.y for p in c.points],
            mode="lines+markers+text", name=names[i] if names else f"{c.defence}: {c.param}",
            line={"color": colour, "width": 2}, marker={"size": 9, "color": colour},
            textposition="top right", textfont={"size": 12, "color": colour},
            text=[p.label for p in c.points], hovertext=[p.detail for p in c.points]))
    ref = next((c.reference for c in curves if c.reference is not None), None)
    if ref is not None:
        fig.add_trace(go.Scatter(x=[ref.x], y=[ref.y], mode="markers+text", name="no defence",
                                 text=["no defence"], textposition="bottom left",
                                 marker={"symbol": "star", "size": 16, "color": "#444"}))
    chance = next((c for c in curves if c.chance is not None), None)
    if chance is not None and chance.chance is not None:
        fig.add_hline(y=chance.chance, line={"dash": "dash", "color": "#888"},
                      annotation_text=f"{chance.chance_label} = {chance.chance:.3f}",
                      annotation_position="bottom right")
    x_label = curves[0].x_label if curves else ""
    y_label = curves[0].y_label if curves else ""
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
