"""Reconstruction attacks: white-box inversion and the learned decoder recover faces."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facepriv_core import attacks, defences, faces, metrics
from facepriv_core.attacks import AttackCancelled, AttackCase, ProgressEvent
from facepriv_core.attacks.decoder_inversion import train_decoder
from facepriv_core.cancel import Cancelled
from facepriv_core.defences.base import Defence, DefenceParams, Protected
from facepriv_core.defences.keys import KeySource


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> torch.Tensor:
    return faces.chips_to_tensor(sfhq_faces.chips(10))


def make_case(chips: torch.Tensor, name: str, **params: Any) -> AttackCase:
    d = defences.get(name)
    p = d.Params(**params)
    return AttackCase(original=chips, protected=d.protect_keyed(chips, p, torch.Generator(),
                                                                  KeySource.from_seed(0)),
                      defence=d, defence_params=p)


class EmbeddingDefence(Defence):
    """A stand-in that sends the dlib descriptor itself, to exercise embedding wires."""

    name = "test-embedding"
    title = "dlib descriptor on the wire"
    wire_kind = "embedding"
    Params = DefenceParams

    def protect(self, x: torch.Tensor, params: Any, rng: torch.Generator,
                progress: Any = None) -> Protected:
        from facepriv_core import models

        with torch.no_grad():
            emb = models.get("dlib-resnet")(x)
        return Protected(wire=emb, wire_kind="embedding", preview=np.zeros((len(x), 1, 1, 3),
                         np.uint8), utility=lambda rec: emb)


def test_attacks_are_registered() -> None:
    assert {"whitebox_inversion", "decoder_inversion"} <= set(attacks.names())


def test_whitebox_inverts_split_features(chips: torch.Tensor) -> None:
    case = make_case(chips, "split")
    start = time.perf_counter()
    result = attacks.get("whitebox_inversion").run(case, attacks.get("whitebox_inversion")
                                                   .Params())
    seconds = time.perf_counter() - start
    agg = result.aggregates
    print(f"white-box on split features, {len(chips)} faces, {seconds:.1f} s: {agg}")
    assert result.reconstructions.shape == chips.shape
    assert set(result.per_image[0]) == {"ssim", "psnr", "cosine", "feature_distance"}
    assert agg["ssim"] >= 0.5 and agg["cosine"] >= 0.8
    assert result.threat_model.knows == ("wire", "shallow_model")


def test_whitebox_progress_improves_and_cancels(chips: torch.Tensor) -> None:
    attack = attacks.get("whitebox_inversion")
    case = make_case(chips[:2], "split")
    events: list[ProgressEvent] = []
    attack.run(case, attack.Params(steps=40, report_every=5), progress=events.append)
    assert [e.step for e in events] == list(range(5, 41, 5))
    assert all(e.preview.shape == (150, 150, 3) and e.preview.dtype == np.uint8 for e in events)
    assert events[-1].metrics["loss"] < events[0].metrics["loss"]
    assert events[-1].metrics["ssim_image0"] > events[0].metrics["ssim_image0"]

    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    start = time.perf_counter()
    with pytest.raises(AttackCancelled):
        attack.run(case, attack.Params(steps=10_000), cancel=stop.is_set)
    assert time.perf_counter() - start < 3.0


def test_whitebox_inverts_embeddings(chips: torch.Tensor) -> None:
    d = EmbeddingDefence()
    case = AttackCase(original=chips[:2], protected=d.protect(chips[:2], None, torch.Generator()),
                      defence=d, defence_params=DefenceParams())
    attack = attacks.get("whitebox_inversion")
    result = attack.run(case, attack.Params(steps=30))
    print("white-box on embeddings (30 steps):", result.aggregates)
    assert "recogniser" in result.threat_model.knows
    assert result.aggregates["cosine"] > 0.95


def test_whitebox_deblurs_through_the_public_blur(chips: torch.Tensor) -> None:
    case = make_case(chips[:2], "blur", kernel=21)
    attack = attacks.get("whitebox_inversion")
    result = attack.run(case, attack.Params(steps=200, tv_weight=0.01))
    blurred = np.mean(metrics.batch_image_metrics(faces.tensor_to_chips(chips[:2]),
                                                  case.protected.preview)["ssim"])
    print(f"white-box on blur 21: ssim {result.aggregates['ssim']:.3f} (wire {blurred:.3f})")
    assert result.aggregates["ssim"] > blurred + 0.02


def test_applicable_refuses_with_reasons(chips: torch.Tensor) -> None:
    wb = attacks.get("whitebox_inversion")
    dec = attacks.get("decoder_inversion")
    split = make_case(chips[:1], "split")
    assert wb.applicable(split.protected, split.defence) is None
    assert dec.applicable(split.protected, split.defence) is None
    odd = Protected(wire=torch.zeros(1, 5, 7, 7), wire_kind="features",
                    preview=np.zeros((1, 7, 7, 3), np.uint8), utility=lambda rec: None)
    assert "dlib-resnet stage" in wb.applicable(odd, split.defence)
    freq = Protected(wire=torch.zeros(1, 5, 7, 7), wire_kind="frequency",
                     preview=np.zeros((1, 7, 7, 3), np.uint8), utility=lambda rec: None)
    assert "frequency" in wb.applicable(freq, split.defence)
    assert "defence" in dec.applicable(split.protected, None)
    flat = Protected(wire=torch.zeros(1, 4, 4), wire_kind="features",
                     preview=np.zeros((1, 4, 4, 3), np.uint8), utility=lambda rec: None)
    assert "shape" in dec.applicable(flat, split.defence)


def test_decoder_needs_auxiliary_faces(chips: torch.Tensor, monkeypatch, tmp_path) -> None:
    """Empty aux means this machine's SFHQ or LFW; with neither, a typed error naming `aux`."""
    from facepriv_core import data_sources

    monkeypatch.setattr(data_sources, "data_roots", lambda: [])
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    attack = attacks.get("decoder_inversion")
    with pytest.raises(ValueError, match="auxiliary faces"):
        attack.run(make_case(chips[:2], "split"), attack.Params())


def test_train_decoder_learns_and_cancels(chips: torch.Tensor) -> None:
    d = defences.get("split")
    params = attacks.get("decoder_inversion").Params(epochs=3, batch_size=4, width=8)
    aux = faces.tensor_to_chips(chips)
    events: list[ProgressEvent] = []
    decoder, info = train_decoder(d, d.Params(), aux, params, progress=events.append)
    assert not decoder.training
    assert [e.step for e in events] == [1, 2, 3] and events[-1].preview.shape == (150, 150, 3)
    assert info["n_train"] == 9 and info["n_val"] == 1
    assert events[-1].metrics["train_loss"] < events[0].metrics["train_loss"]
    with pytest.raises(Cancelled):  # the trainer's root; the attack turns it into AttackCancelled
        train_decoder(d, d.Params(), aux, params, cancel=lambda: True)


@pytest.mark.slow
def test_decoder_reconstructs_split_features(sfhq_dir: Path, chips: torch.Tensor,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    attack = attacks.get("decoder_inversion")
    case = make_case(chips, "split")
    aux = f"sfhq:{sfhq_dir}"
    untrained = attack.run(case, attack.Params(aux=aux, epochs=0))
    events: list[ProgressEvent] = []
    start = time.perf_counter()
    trained = attack.run(case, attack.Params(aux=aux, epochs=10), progress=events.append)
    seconds = time.perf_counter() - start
    print(f"decoder on split features: untrained {untrained.aggregates}, trained "
          f"{trained.aggregates} in {seconds:.0f} s; {trained.details}")
    # Attacked faces sampled into the auxiliary set are dropped; none may remain.
    assert trained.details["aux_excluded"] >= 0 and not trained.details["cached"]
    assert len(events) == 11 and events[-1].preview.shape == (150, 150, 3)
    assert trained.aggregates["ssim"] > untrained.aggregates["ssim"] + 0.15
    again = attack.run(case, attack.Params(aux=aux, epochs=10))
    assert again.details["cached"]
    assert again.aggregates["ssim"] == pytest.approx(trained.aggregates["ssim"], abs=1e-6)
