"""`facepriv verify --defence`: the verification protocol through a defence's authorised service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def olivetti_80(olivetti_path: Path) -> tuple[np.ndarray, np.ndarray]:
    from facepriv_core import datasets

    ds = datasets.load(f"olivetti:{olivetti_path}").limit(80, seed=0)
    aligned = datasets.align_dataset(ds)
    return aligned.chips, ds.identities[aligned.indices]


def test_no_defence_through_the_service_equals_clean_verify(
        olivetti_80: tuple[np.ndarray, np.ndarray]) -> None:
    """The 'none' defence's service is the recogniser itself: same pairs, same folds, so
    verify_defence must reproduce the clean protocol exactly."""
    from facepriv_core import datasets, defences, models
    from facepriv_core.verification import embed_chips, verify_defence, verify_embeddings

    chips, ids = olivetti_80
    torch.set_num_threads(2)
    model = models.get("dlib-resnet", "cpu")
    clean = verify_embeddings(embed_chips(model, chips), *datasets.make_pairs(ids, 1500, seed=0))
    none = defences.get("none")
    served = verify_defence(chips, ids, none, none.Params(), model)
    assert served.pairs == clean.pairs
    assert served.accuracy == pytest.approx(clean.accuracy, abs=1e-9)
    assert served.auc == pytest.approx(clean.auc, abs=1e-6)


def test_pixelate_block_8_lowers_accuracy(olivetti_path: Path) -> None:
    """Issue 11's bar. Measured on these 80 faces: clean 1.00, pixelate block 8 0.82."""
    spec = ["--dataset", f"olivetti:{olivetti_path}", "--limit", "80", "--json"]
    clean = run_cli("verify", *spec)
    assert clean.returncode == 0, clean.stderr
    pix = run_cli("verify", *spec, "--defence", "pixelate", "--set", "block=8")
    assert pix.returncode == 0, pix.stderr
    c, p = json.loads(clean.stdout), json.loads(pix.stdout)
    assert p["defence"] == "pixelate" and p["params"] == {"block": 8}
    assert "defence" not in c
    assert set(c) <= set(p) and p["pairs"] == c["pairs"]
    assert c["accuracy"] >= 0.97
    assert p["accuracy"] <= c["accuracy"] - 0.08, (c, p)


def test_keyed_defence_reports_its_key_fingerprint_only(olivetti_path: Path) -> None:
    """One client key for the run: its fingerprint and kind are printed, never key material;
    --reproducible-key repeats the key, the default draws a fresh secret one."""
    spec = ["verify", "--dataset", f"olivetti:{olivetti_path}", "--limit", "40",
            "--defence", "ppfr_fd", "--no-train", "--json"]
    runs = [run_cli(*spec, "--reproducible-key"), run_cli(*spec, "--reproducible-key"),
            run_cli(*spec)]
    outs = []
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    a, b, fresh = outs
    assert a["defence"] == "ppfr_fd" and a["params"]["channels"] == 36
    assert a["service_ready"] in (True, False)
    assert set(a["key"]) == {"fingerprint", "reproducible", "secret", "label"}
    assert a["key"]["reproducible"] and not fresh["key"]["reproducible"] and fresh["key"]["secret"]
    assert a["key"]["fingerprint"] == b["key"]["fingerprint"] != fresh["key"]["fingerprint"]
    assert "shuffle1" not in runs[0].stdout


def test_public_params_drops_secret_fields() -> None:
    from pydantic import BaseModel, Field

    from facepriv_core.verification import public_params

    class P(BaseModel):
        block: int = 8
        key_seed: int = 3
        token: str = Field("x", json_schema_extra={"secret": True})

    assert public_params(P()) == {"block": 8}


def test_set_without_defence_and_bad_param_are_clear_errors(olivetti_path: Path) -> None:
    spec = ["--dataset", f"olivetti:{olivetti_path}", "--limit", "20", "--json"]
    proc = run_cli("verify", *spec, "--set", "block=8")
    assert proc.returncode == 2 and "--defence" in proc.stderr
    proc = run_cli("verify", *spec, "--defence", "pixelate", "--set", "block=abc")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("verify", *spec, "--defence", "nope")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
