"""Plotly figures shared by the pages and the report."""

from __future__ import annotations

import plotly.graph_objects as go

from facepriv_core.audit import SweepResult


def sweep_figure(sweeps: dict[str, SweepResult], x_name: str, y_name: str) -> go.Figure:
    """Privacy (an 'attack.metric') against utility, one labelled line per sweep."""
    attack, _, metric = y_name.partition(".")
    fig = go.Figure()
    for label, result in sweeps.items():
        fig.add_trace(go.Scatter(
            x=[p.utility.get(x_name) for p in result.points],
            y=[p.attacks.get(attack, {}).get(metric) for p in result.points],
            mode="lines+markers+text", name=label, textposition="top center",
            text=[f"{result.param}={p.value}" for p in result.points]))
    fig.update_layout(xaxis_title=x_name, yaxis_title=y_name, height=520,
                      legend={"orientation": "h", "y": -0.2})
    return fig
