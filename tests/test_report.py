"""Reports: JSON and self-contained HTML, with no secret key in either."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from facepriv_core import report
from facepriv_core.defences.base import SecretKey

ENV = {"facepriv": "test", "device": "cpu"}


def sections() -> list[report.Section]:
    face = np.zeros((150, 150, 3), np.uint8)
    fig = go.Figure(go.Scatter(x=[1.0, 0.9], y=[1.0, 0.2], text=["block=1", "block=16"]))
    return [
        report.Section("identity on pixelate", "attack",
                       {"spec": {"defence": "pixelate", "seed": 0},
                        "aggregates": {"match_rate": 0.25, "cosine": 0.91}},
                       images={"original": face, "reconstruction": face + 255}),
        report.Section("sweep", "sweep", {"points": [{"block": 1, "utility": 1.0}]}, figure=fig),
    ]


def test_json_round_trips_the_data() -> None:
    doc = json.loads(report.to_json(sections(), ENV))
    assert doc["environment"] == ENV
    assert doc["sections"][0]["data"]["aggregates"]["match_rate"] == 0.25
    assert doc["sections"][1]["data"]["points"][0]["block"] == 1


def test_html_is_self_contained() -> None:
    page = report.to_html(sections(), ENV)
    head, body = page.split("</head>", 1)
    assert "<script src=" not in page and len(head) > 1_000_000  # plotly.js inline, once
    assert body.count("data:image/png;base64,") == 2
    assert "block=16" in body and "Plotly.newPlot" in body and "match_rate" in body


def test_a_secret_key_cannot_get_in() -> None:
    key = SecretKey(perm=torch.tensor([2, 0, 1]))
    bad = [report.Section("oops", "attack", {"key": key})]
    with pytest.raises(TypeError, match="secret key"):
        report.to_json(bad, ENV)
    with pytest.raises(TypeError, match="secret key"):
        report.to_html(bad, ENV)
