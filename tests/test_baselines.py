"""Baselines (noise, blur, pixelation) and the `none` / `split` references."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facepriv_core import defences, faces, metrics, models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> torch.Tensor:
    return faces.chips_to_tensor(sfhq_faces.chips(12, grid="SFHQ_variability_ethnicity"))

def utility_cosine(name: str, x: torch.Tensor, **params: object) -> float:
    d = defences.get(name)
    p = d.protect(x, d.Params(**params), torch.Generator().manual_seed(0))
    rec = models.get("dlib-resnet")
    with torch.no_grad():
        return float(metrics.cosine(p.utility_embedding(rec), rec.embed(x)).mean())


@pytest.mark.parametrize(("name", "params"), [
    ("none", {}), ("noise", {"sigma": 0}), ("blur", {"kernel": 0}), ("pixelate", {"block": 1}),
])
def test_zero_strength_is_identity(chips: torch.Tensor, name: str, params: dict) -> None:
    d = defences.get(name)
    p = d.protect(chips, d.Params(**params), torch.Generator().manual_seed(0))
    assert p.wire_kind == "image" and p.key is None
    assert torch.equal(p.wire, chips)


@pytest.mark.parametrize(("name", "field", "values"), [
    ("noise", "sigma", [2, 8, 24, 64]),
    ("blur", "kernel", [3, 9, 21, 41]),
    ("pixelate", "block", [4, 8, 16, 32]),
])
def test_utility_falls_monotonically_with_strength(chips: torch.Tensor, name: str, field: str,
                                                    values: list[int]) -> None:
    cos = [utility_cosine(name, chips, **{field: v}) for v in values]
    print(name, dict(zip(values, np.round(cos, 4), strict=True)))
    assert all(a > b for a, b in itertools.pairwise(cos)), cos
    # dlib cosines are high for all faces (same-person threshold ~0.92), so 0.03 is a lot.
    assert cos[0] > 0.98 and cos[-1] < cos[0] - 0.03


def test_noise_is_seeded(chips: torch.Tensor) -> None:
    d = defences.get("noise")
    a = d.protect(chips, d.Params(sigma=8), torch.Generator().manual_seed(1)).wire
    b = d.protect(chips, d.Params(sigma=8), torch.Generator().manual_seed(1)).wire
    c = d.protect(chips, d.Params(sigma=8), torch.Generator().manual_seed(2)).wire
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_sends_features_and_keeps_utility(chips: torch.Tensor) -> None:
    d = defences.get("split")
    p = d.protect(chips, d.Params(), torch.Generator())
    assert p.wire_kind == "features" and p.wire_shape == (32, 35, 35)
    assert p.preview.dtype == np.uint8 and p.preview.shape[-1] == 3
    assert utility_cosine("split", chips) > 0.9999


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        defences.get("pixelate").Params(block=0)
    with pytest.raises(ValueError):
        defences.get("noise").Params(sigmaa=3)


def test_protect_cli(tmp_path: Path, sfhq_dir: Path) -> None:
    image = sfhq_dir / "sample_1x2_r0c0.jpg"
    proc = subprocess.run(
        [sys.executable, "-m", "facepriv_core", "protect", "--defence", "pixelate",
         "--image", str(image), "--out", str(tmp_path), "--set", "block=16", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["wire_kind"] == "image" and out["wire_shape"] == [3, 150, 150]
    assert out["key_bytes"] == 0
    assert 0 < out["utility_cosine"] < 1 and 0 < out["ssim"] < 1 and out["psnr"] > 10
    assert (tmp_path / "pixelate_preview.png").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "facepriv_core", "protect", "--defence", "pixelate",
         "--image", str(image), "--set", "block=0", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and "block" in bad.stderr and "Traceback" not in bad.stderr
