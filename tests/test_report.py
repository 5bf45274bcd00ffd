"""Reports: summary first, page-width layout, faces only on request, no secret key."""

from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from facepriv_core import report
from facepriv_core.attacks.base import AttackResult, ThreatModel
from facepriv_core.defences.base import SecretKey
from facepriv_core.verdicts import Phrasing, Rule, judge

ENV = {"facepriv": "test", "device": "cpu"}
PHRASING = Phrasing("identity still matches", "identity no longer matches", "recognisers")


def verdict(values: list[float]) -> object:
    return judge([Rule(metric="cosine@dlib-resnet", label="cosine", values=values,
                       threshold=0.921, threshold_name="same-person threshold",
                       threshold_source="dlib-resnet model card", subject="dlib-resnet")],
                 PHRASING)


def runs() -> list[object]:
    face = np.full((150, 150, 3), 90, np.uint8)
    protect = report.RunRecord.protect(
        "pmt", {"steps": 40, "key_seed": 1234}, {"utility_cosine": 0.93, "ssim": 0.41},
        "image", (3, 150, 150), key_fingerprint="ab12cd34", images={"protected": face})
    result = AttackResult("identity", ThreatModel(("wire",), "the server compares"),
                          [{"cosine@dlib-resnet": 0.97, "rank1": 1.0}])
    result.verdict = verdict([0.97])  # type: ignore[assignment]
    attack = report.RunRecord.attack(result, "pixelate", {"block": 4}, "image", (3, 150, 150),
                                     images={"original": face})
    wide = report.Section("benchmark", "table",
                          {"table": [{f"column {i}": i * 0.5 for i in range(12)}],
                           "spec": {"defence": "blur", "params": {"sigma": 2.0}}})
    return [protect, attack, wide]


def test_summary_comes_first_and_names_the_verdict() -> None:
    page = report.to_html(runs(), ENV, title="Review of PMT", author="Ada", notes="pilot")
    assert re.search(r"<h1>Review of PMT</h1>", page) and "Author: Ada" in page
    body = page.split("<body>", 1)[1]
    sections = re.findall(r"<section id='(\w+)'>", body)
    assert sections == ["summary", "details", "environment"]
    summary = body[body.index("id='summary'"):body.index("id='details'")]
    assert "LEAKS" in summary and "identity still matches (dlib-resnet): cosine 0.97" in summary
    assert "pixelate (block=4)" in summary


def test_faces_are_opt_in_with_a_warning() -> None:
    default = report.to_html(runs(), ENV)
    assert "data:image/png" not in default and report.NO_FACES_NOTE in default
    with_faces = report.to_html(runs(), ENV, include_faces=True)
    assert with_faces.count("data:image/png;base64,") == 2
    assert report.FACES_WARNING in with_faces


def test_layout_fits_a_page_no_raw_json_no_plotly_without_a_figure() -> None:
    page = report.to_html(runs(), ENV)
    assert "<pre>" not in page and "{&quot;" not in page  # specs are tables, not JSON dumps
    assert "table-layout:fixed" in page and "max-width:960px" in page
    assert "spec.params.sigma" in page  # nested spec flattened into a key/value table
    assert "Plotly" not in page and len(page) < 100_000
    wide = page[page.index("3. benchmark"):]
    assert wide.count("<tr>") >= 12  # the 12-column row is shown transposed
    fig = go.Figure(go.Scatter(x=[1.0, 0.9], y=[1.0, 0.2]))
    with_fig = report.to_html([report.Section("sweep", "sweep", {}, figure=fig)], ENV)
    head = with_fig.split("</head>", 1)[0]
    assert len(head) > 1_000_000 and "Plotly.newPlot" in with_fig


def test_protect_runs_show_params_key_fingerprint_and_metrics_never_the_seed() -> None:
    page = report.to_html(runs(), ENV)
    assert "ab12cd34" in page and "steps=40" in page and "utility cosine" in page
    assert "1234" not in page and "key_seed" not in page
    doc = json.loads(report.to_json(runs(), ENV, title="t"))
    assert "1234" not in json.dumps(doc) and doc["title"] == "t"
    assert doc["runs"][0]["kind"] == "protect" and "images" not in doc["runs"][0]
    assert doc["summary"][1]["verdicts"]["identity"]["leaks"] is True


def test_a_secret_key_cannot_get_in() -> None:
    key = SecretKey(perm=torch.tensor([2, 0, 1]))
    bad = [report.Section("oops", "attack", {"key": key})]
    with pytest.raises(TypeError, match="secret key"):
        report.to_json(bad, ENV)
    with pytest.raises(TypeError, match="secret key"):
        report.to_html(bad, ENV)


def test_app_sections_with_a_verdict_reach_the_summary() -> None:
    """The app's sections: a 'ran on' block and the verdict as a dict."""
    v = verdict([0.97])
    section = report.Section("identity against blur", "attack", {
        "ran on": {"faces": "upload", "defence": "blur", "params": "sigma=3.0",
                   "wire": "image, 3 x 150 x 150", "key fingerprint": "ffee0011"},
        "verdict": {"leaks": True, "status": "leaks", "metric": "cosine@dlib-resnet",
                    "value": 0.97, "threshold": 0.921, "reason": v.reason},  # type: ignore
        "metrics": {"cosine@dlib-resnet": 0.97}})
    page = report.to_html([section], ENV)
    summary = page[page.index("id='summary'"):page.index("id='details'")]
    assert "blur (sigma=3.0)" in summary and "LEAKS" in summary
    assert "identity still matches" in summary and "ffee0011" in page
