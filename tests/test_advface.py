"""AdvFace: adversarial split features against a shadow decoder, under a recognition bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facepriv_core import defences, metrics, models
from facepriv_core.attacks.decoder_inversion import DecoderParams, train_decoder
from facepriv_core.defences import advface
from facepriv_core.defences.base import Protected, ProtectionCancelled
from facepriv_core.faces import chips_to_tensor, tensor_to_chips

N_VICTIMS = 3
N_AUX = 32
#: Tiny shadow decoder and few steps, so the default run stays well under a minute and a half.
FAST = {"aux": "sfhq:test-fixture", "aux_limit": N_AUX, "decoder_epochs": 2, "steps": 12}


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> np.ndarray:
    """Victims first, then auxiliary faces (other crops of the sample, never the victims)."""
    return sfhq_faces.chips(N_VICTIMS + N_AUX)


@pytest.fixture(scope="module")
def aux_env(chips: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh decoder cache, and auxiliary faces from the test fixture instead of re-aligning
    a dataset: advface.load_aux returns the non-victim chips."""
    cache = tmp_path_factory.mktemp("facepriv-cache")
    aux = chips[N_VICTIMS:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEPRIV_CACHE_DIR", str(cache))
        mp.setattr(advface, "load_aux", lambda spec, limit, seed=0, use_cache=True:
                   (aux[:limit], [str(i) for i in range(limit)], np.zeros((limit, 128))))
        yield cache


def protect(x: torch.Tensor, seed: int = 0, **params: Any) -> tuple[Protected, float]:
    d = defences.get("advface")
    start = time.perf_counter()
    p = d.protect(x, d.Params(**{**FAST, **params}), torch.Generator().manual_seed(seed))
    return p, time.perf_counter() - start


@pytest.fixture(scope="module")
def first(chips: np.ndarray, aux_env: Path) -> tuple[Protected, float]:
    return protect(chips_to_tensor(chips[:N_VICTIMS]))


def test_registered_with_paper() -> None:
    d = defences.get("advface")
    assert d.optimising and d.wire_kind == "features"
    assert "Adversarial Facial Features" in d.paper.cite()


def test_missing_aux_is_a_clear_error(chips: np.ndarray, monkeypatch, tmp_path) -> None:
    """An empty `aux` means this machine's SFHQ or LFW; with neither, a typed error that says
    what to pass (before any training starts)."""
    from facepriv_core import data_sources
    from facepriv_core.errors import UsageError

    monkeypatch.setattr(data_sources, "data_roots", lambda: [])
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    with pytest.raises(UsageError, match="set `aux` to a dataset spec"):
        protect(chips_to_tensor(chips[:1]), aux="")


def test_shadow_ssim_drops_and_cosine_holds(first: tuple[Protected, float],
                                            chips: np.ndarray) -> None:
    p, seconds = first
    m = dict(p.metrics)
    print(f"AdvFace ({seconds:.1f} s incl. shadow training): shadow SSIM clean "
          f"{m['shadow_ssim_clean']:.3f} -> adversarial {m['shadow_ssim_adversarial']:.3f}; "
          f"cosine mean {m['cosine_mean']:.4f} min {m['cosine_min']:.4f}; budget used "
          f"{m['budget_used']:.2f}, relative L2 {m['relative_l2']:.3f}")
    assert m["shadow_cached"] == 0.0
    assert p.wire.shape == (N_VICTIMS, 32, 35, 35) and p.wire_kind == "features"
    assert p.preview.dtype == np.uint8 and p.preview.shape[0] == N_VICTIMS
    assert m["shadow_ssim_adversarial"] < m["shadow_ssim_clean"] - 0.05
    # The guarantee, checked independently of the defence's own bookkeeping: every face's
    # recognition cosine (server part on the wire vs on the clean feature) meets the bound.
    net = models.get("dlib-resnet")
    with torch.no_grad():
        clean = net(chips_to_tensor(chips[:N_VICTIMS]))
        cos = F.cosine_similarity(p.utility_embedding(net), clean, dim=1)
    print(f"recognition cosine per face: {cos.numpy().round(4)}")
    assert (cos >= 0.98 - 1e-5).all()
    assert m["cosine_min"] == pytest.approx(float(cos.min()), abs=1e-4)
    assert 0 < m["budget_used"] <= 1 + 1e-6 and (p.wire >= 0).all()


def test_cached_and_deterministic(first: tuple[Protected, float], chips: np.ndarray) -> None:
    again, seconds = protect(chips_to_tensor(chips[:N_VICTIMS]), seed=0)
    print(f"second call {seconds:.1f} s (first {first[1]:.1f} s incl. training)")
    assert again.metrics["shadow_cached"] == 1.0
    assert torch.equal(again.wire, first[0].wire)


def test_progress_and_cancel(chips: np.ndarray, first: tuple[Protected, float]) -> None:
    x = chips_to_tensor(chips[:1])
    steps: list[tuple[int, int]] = []
    d = defences.get("advface")
    params = d.Params(**{**FAST, "steps": 2})
    d.protect(x, params, torch.Generator(), progress=lambda k, n: steps.append((k, n)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    answers = iter([False, True])  # cancelled before the second step
    with pytest.raises(ProtectionCancelled):
        d.protect(x, params, torch.Generator(), cancel=lambda: next(answers))
    # cancel while the shadow decoder trains (another configuration, not cached yet)
    with pytest.raises(ProtectionCancelled):
        d.protect(x, d.Params(**{**FAST, "decoder_seed": 1}), torch.Generator(),
                  cancel=lambda: True)


def test_budget_projection_l2(first: tuple[Protected, float], chips: np.ndarray) -> None:
    x = chips_to_tensor(chips[:1])
    with torch.no_grad():  # the defence takes its own gradients whatever the caller's mode
        p, _ = protect(x, norm="l2", epsilon=0.05, steps=3)
    shallow, _ = models.get("dlib-resnet").split(advface.DEFAULT_SPLIT)
    with torch.no_grad():
        f = shallow(x)
    assert (p.wire - f).norm() <= 0.05 * f.norm() * (1 + 1e-5)
    assert p.metrics["cosine_min"] >= 0.98


@pytest.mark.slow
def test_trained_shadow_and_transfer_to_attacker_decoder(sfhq_faces, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A properly trained shadow decoder, and whether the adversarial features also fool an
    attacker's decoder trained independently (other auxiliary faces, other seed)."""
    n_victims, n_aux, epochs = 6, 150, 8
    all_chips = sfhq_faces.chips(n_victims + 2 * n_aux)
    victims = chips_to_tensor(all_chips[:n_victims])
    shadow_aux = all_chips[n_victims:n_victims + n_aux]
    attacker_aux = all_chips[n_victims + n_aux:]
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(advface, "load_aux", lambda spec, limit, seed=0, use_cache=True:
                        (shadow_aux[:limit], None, None))
    p, seconds = protect(victims, aux_limit=n_aux, decoder_epochs=epochs, steps=20)
    m = dict(p.metrics)
    d = defences.get("split")
    attacker, info = train_decoder(d, d.Params(), attacker_aux,
                                   DecoderParams(epochs=epochs, device="cpu"), seed=7)
    with torch.no_grad():
        clean = d.protect(victims, d.Params(), torch.Generator()).wire
        originals = tensor_to_chips(victims)
        transfer = {name: float(np.mean(metrics.batch_image_metrics(
            originals, tensor_to_chips(attacker(w)))["ssim"]))
            for name, w in (("clean", clean), ("adversarial", p.wire))}
    print(f"AdvFace trained shadow ({n_aux} aux, {epochs} epochs, {seconds:.0f} s): shadow SSIM "
          f"{m['shadow_ssim_clean']:.3f} -> {m['shadow_ssim_adversarial']:.3f}, cosine min "
          f"{m['cosine_min']:.4f}; attacker decoder (val SSIM {info['val_ssim']:.3f}): "
          f"{transfer['clean']:.3f} -> {transfer['adversarial']:.3f}")
    assert m["shadow_ssim_adversarial"] < m["shadow_ssim_clean"] - 0.1
    assert m["cosine_min"] >= 0.98
