"""The `facepriv` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facepriv_core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_models_list_json() -> None:
    proc = run_cli("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {"name", "task", "available", "reason", "licence"} <= set(rows[0])
    by_name = {r["name"]: r for r in rows}
    assert by_name["dlib-resnet"]["available"] is True
    assert by_name["dlib-resnet"]["task"] == "recognition"


def test_verify_olivetti_all_400(olivetti_path: Path) -> None:
    """The issue's bar: dlib-resnet on all 400 upscaled Olivetti crops, accuracy >= 0.95."""
    proc = run_cli("verify", "--dataset", f"olivetti:{olivetti_path}", "--model", "dlib-resnet",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"accuracy", "tar_at_far_1e-2", "auc", "threshold", "pairs"} <= set(out)
    assert out["images"] == 400 and out["faces_used"] == 400
    assert out["accuracy"] >= 0.95, out
    assert out["auc"] >= 0.97, out
    assert out["pairs"] == 3000
    print(json.dumps(out))


def test_verify_bad_dataset_is_a_clear_error() -> None:
    proc = run_cli("verify", "--dataset", "olivetti:/nope/olivettifaces.mat", "--json")
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr
