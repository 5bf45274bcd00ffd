"""Audits carry verdicts and the service's verification accuracy; sweeps give curve data;
metric keys are documented; `facepriv report --from` renders saved audits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facepriv_core import audit, datasets, metric_docs
from facepriv_core.audit import AuditResult, AuditSpec, Faces
from facepriv_core.audit.runner import SweepPoint, SweepResult
from facepriv_core.audit.utility import verification_accuracy
from facepriv_core.cli import main
from facepriv_core.verdicts import OverallVerdict, Phrasing, Rule, judge

CONTRACT_KEYS = {"leaks", "metric", "value", "threshold", "ci", "reason"}


@pytest.fixture(scope="module")
def faces(olivetti_path: Path) -> Faces:
    """Twenty Olivetti faces: four people, five photos each."""
    pick = (np.arange(4)[:, None] * 10 + np.arange(5)).ravel()
    ds = datasets.load(f"olivetti:{olivetti_path}").subset(pick)
    aligned = datasets.align_dataset(ds)
    return Faces(aligned.chips, ds.identities[aligned.indices],
                 [str(i) for i in aligned.indices], aligned.failures)


def spec(olivetti_path: Path, defence: str, **params: object) -> AuditSpec:
    return AuditSpec(defence=defence, defence_params=params,
                     attacks=[{"name": "identity", "params": {"other_recognisers": False}}],
                     dataset=f"olivetti:{olivetti_path}", bootstrap=500)


@pytest.fixture(scope="module")
def audits(faces: Faces, olivetti_path: Path) -> dict[str, AuditResult]:
    return {"none": audit.run(spec(olivetti_path, "none"), faces=faces),
            "pixelate": audit.run(spec(olivetti_path, "pixelate", block=75), faces=faces)}


def test_audit_summary_has_the_contract_verdict_keys(audits: dict[str, AuditResult]) -> None:
    leak = json.loads(json.dumps(audits["none"].summary()))
    v = leak["verdicts"]["identity"]
    assert CONTRACT_KEYS | {"threshold_source", "higher_leaks"} <= v.keys()
    assert v["leaks"] is True and v["metric"] == "rank1@dlib-resnet" and len(v["ci"]) == 2
    assert v["threshold"] == pytest.approx(4 / 19) and "chance" in v["threshold_source"]
    assert leak["overall_verdict"]["leaks"] is True
    assert leak["overall_verdict"]["reason"].startswith("none leaks to 1 of 1 attacks")
    safe = audits["pixelate"].summary()
    assert safe["verdicts"]["identity"]["leaks"] is False
    assert safe["overall_verdict"]["leaks"] is False
    assert "pixelate (block=75)" in safe["overall_verdict"]["reason"]


def test_audit_json_round_trips_with_verdicts(audits: dict[str, AuditResult]) -> None:
    r = audits["pixelate"]
    back = AuditResult.model_validate_json(r.model_dump_json())
    assert back.verdicts == r.verdicts and back.overall_verdict == r.overall_verdict
    assert back.summary() == r.summary() and back.notes == r.notes
    old = json.loads(r.model_dump_json())  # results saved before verdicts existed still load
    for key in ("verdicts", "overall_verdict", "notes"):
        old.pop(key)
    assert AuditResult.model_validate(old).overall_verdict.leaks is False


def test_audit_reports_the_services_verification_accuracy(audits: dict[str, AuditResult]
                                                          ) -> None:
    clean = audits["none"].utility
    blocky = audits["pixelate"].utility
    # Measured: clean 1.00 on these 20 faces; pixelate 75 leaves the service near chance.
    assert clean["verification_accuracy"].mean > 0.9
    assert blocky["verification_accuracy"].mean < clean["verification_accuracy"].mean - 0.2
    assert blocky["verification_accuracy_clean"].mean == clean["verification_accuracy"].mean
    assert "authorised service" in audits["pixelate"].notes["verification_accuracy"]


def test_verification_accuracy_is_skipped_with_a_reason() -> None:
    emb = np.random.default_rng(0).normal(size=(6, 8))
    est, why = verification_accuracy(emb, np.zeros(6, int))
    assert est is None and "at least 2 identities" in why
    est, why = verification_accuracy(emb, np.arange(6))
    assert est is None and "two photos" in why


def test_every_emitted_metric_key_is_documented(audits: dict[str, AuditResult]) -> None:
    s = audits["pixelate"].summary()
    keys = [("utility", k) for k in s["utility"]] + [
        ("attack", k) for m in s["attacks"].values() for k in m]
    keys += [("attack", k) for k in ("attr_cossim@age", "gender_flip_rate", "srra",
                                     "naive_match_rate", "source_cosine", "feature_distance")]
    for section, key in keys:
        d = metric_docs.doc(key, section)  # type: ignore[arg-type]
        assert d.direction != "info" and d.title != key, f"{key} is undocumented"
    assert metric_docs.doc("identity.rank1@faceres").text.endswith("(higher = more leakage)")
    assert metric_docs.doc("gender_flip_rate").direction == "lower_leaks"
    assert metric_docs.doc("verification_accuracy").direction == "higher_better"
    assert "faceres" in metric_docs.doc("rank1@faceres").title


def _point(value: object, acc: float, ranks: dict[str, float], chance: float) -> SweepPoint:
    rules = [Rule(metric=f"rank1@{k}", label="rank-1", values=[v] * 4, threshold=chance,
                  threshold_name="chance", threshold_source="test", subject=k)
             for k, v in ranks.items()]
    v = judge(rules, Phrasing("identity still matches", "no match", "recognisers"))
    return SweepPoint(value=value, utility={"verification_accuracy": acc,
                                            "utility_cosine": acc},
                      attacks={"identity": {f"rank1@{k}": r for k, r in ranks.items()}},
                      verdicts={"identity": v},
                      overall_verdict=OverallVerdict(leaks=v.leaks, reason=v.reason))


def test_curve_data_plots_service_accuracy_against_the_strongest_unauthorised_rank1() -> None:
    sweep = SweepResult(defence="pixelate", param="block", points=[
        _point(4, 0.95, {"dlib-resnet": 0.9, "faceres": 0.6, "mobileface": 0.8}, 0.1),
        _point(16, 0.70, {"dlib-resnet": 0.3, "faceres": 0.4, "mobileface": 0.2}, 0.1)],
        reference=_point("no defence", 0.99, {"dlib-resnet": 1.0, "faceres": 1.0,
                                              "mobileface": 0.9}, 0.1))
    c = audit.curve_data(sweep)
    assert c.x_metric == "verification_accuracy" and c.y_metric == "identity.strongest_rank1"
    assert [(p.x, p.y, p.detail) for p in c.points] == [(0.95, 0.8, "mobileface"),
                                                        (0.70, 0.4, "faceres")]
    assert c.reference is not None and (c.reference.x, c.reference.y) == (0.99, 1.0)
    assert c.chance == pytest.approx(0.1) and "verification" in c.x_label


@pytest.mark.slow
def test_sweep_reference_point_and_curve(faces: Faces, olivetti_path: Path) -> None:
    result = audit.sweep(spec(olivetti_path, "pixelate"), "block", [4, 75], faces=faces,
                         reference=True)
    assert result.reference is not None and result.reference.value == "no defence"
    c = audit.curve_data(result)
    assert c.x_metric == "verification_accuracy"
    assert c.reference is not None and c.reference.x >= c.points[0].x > c.points[1].x
    assert c.chance == pytest.approx(4 / 19)
    back = SweepResult.model_validate_json(result.model_dump_json())
    assert back.points[1].verdicts == result.points[1].verdicts


def test_report_from_saved_audits(audits: dict[str, AuditResult], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from facepriv_core.cli.audit_cmd import write_outputs

    write_outputs(str(tmp_path / "a"), audits["none"])
    write_outputs(str(tmp_path / "b"), audits["pixelate"])
    out = tmp_path / "report.html"
    assert main(["report", "--from", str(tmp_path / "a" / "result.json"), "--from",
                 str(tmp_path / "b"), "--html", str(out), "--title", "Board review",
                 "--author", "R. Viewer", "--notes", "two runs"]) == 0
    page = out.read_text()
    first = page.index("<section")
    assert page[first:].startswith("<section id='summary'><h2>Summary of verdicts")
    assert page.index("id='summary'") < page.index("id='details'")
    assert "Board review" in page and "R. Viewer" in page and "two runs" in page
    assert "LEAKS" in page and "pixelate (block=75)" in page
    assert "data:image" not in page and len(page) < 200_000  # no faces, no plotly.js
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([json.loads((tmp_path / d / "result.json").read_text())
                                   for d in ("a", "b")]))
    assert main(["report", "--from", str(listing), "--json-out", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [s["overall_verdict"]["leaks"] for s in doc["summary"]] == [True, False]
    capsys.readouterr()
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    assert main(["report", "--from", str(tmp_path / "bad.json"), "--html", str(out)]) == 2
    assert "not a saved audit" in capsys.readouterr().err
    assert main(["report", "--from", str(tmp_path / "missing.json"), "--html", str(out)]) == 2
