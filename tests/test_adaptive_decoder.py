"""The adaptive decoder undoes blur and pixelation better than matching the protected image."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from facepriv_core import attacks, defences, faces
from facepriv_core.attacks import AttackCase
from facepriv_core.defences.keys import KeySource


def make_case(chips: torch.Tensor, name: str, **params: object) -> AttackCase:
    d = defences.get(name)
    p = d.Params(**params)
    return AttackCase(original=chips, protected=d.protect_keyed(chips, p, torch.Generator(),
                                                                  KeySource.from_seed(0)),
                      defence=d, defence_params=p)


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> torch.Tensor:
    return faces.chips_to_tensor(sfhq_faces.chips(10))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache per module, so auxiliary faces are aligned once for all its tests."""
    return tmp_path_factory.mktemp("facepriv-cache")


def test_refuses_wires_it_cannot_undo(chips: torch.Tensor) -> None:
    attack = attacks.get("adaptive_decoder")
    assert attack.name == "adaptive_decoder"
    assert set(attack.threat.knows) == {"wire", "auxiliary_data", "defence_algorithm"}
    for name in ("blur", "pixelate", "noise"):
        case = make_case(chips[:1], name)
        assert attack.applicable(case.protected, case.defence) is None
    split = make_case(chips[:1], "split")
    assert "image" in attack.applicable(split.protected, split.defence)
    # An image wire that is no public transform of the face (PMT optimises it per face):
    # refused from the defence's capabilities, whatever its name.
    plain = make_case(chips[:1], "none")
    optimised = AttackCase(original=plain.original, protected=plain.protected,
                           defence=defences.get("pmt"), defence_params=defences.get("pmt").Params())
    reason = attack.applicable(optimised.protected, optimised.defence)
    assert reason is not None and "key-free" in reason
    with pytest.raises(ValueError, match="key-free"):
        attack.run(optimised, attack.Params(aux="sfhq:unused"))


def test_short_training_runs(chips: torch.Tensor, sfhq_dir: Path, cache: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(cache))
    attack = attacks.get("adaptive_decoder")
    case = make_case(chips[:3], "pixelate", block=16)
    params = attack.Params(aux=f"sfhq:{sfhq_dir}", aux_limit=8, epochs=1, batch_size=4)
    start = time.perf_counter()
    result = attack.run(case, params)
    print(f"adaptive decoder, 1 epoch on {result.details['aux_faces']} aux faces: "
          f"{time.perf_counter() - start:.1f} s, {result.aggregates}")
    assert result.reconstructions.shape == case.original.shape
    assert set(result.per_image[0]) == {"ssim", "psnr", "cosine", "match_rate", "naive_ssim",
                                        "naive_psnr", "naive_cosine", "naive_match_rate"}
    assert result.details["match_threshold"] == pytest.approx(0.921)
    assert set(attack.gain(result)) == {"cosine", "match_rate", "ssim"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), [
    ("pixelate", {"block": 16}),
    ("blur", {"kernel": 21}),
])
def test_adaptive_beats_naive(chips: torch.Tensor, sfhq_dir: Path, cache: Path,
                              monkeypatch: pytest.MonkeyPatch, name: str,
                              params: dict[str, int]) -> None:
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(cache))
    attack = attacks.get("adaptive_decoder")
    case = make_case(chips, name, **params)
    start = time.perf_counter()
    result = attack.run(case, attack.Params(aux=f"sfhq:{sfhq_dir}", aux_limit=160, epochs=6))
    agg = result.aggregates
    print(f"\n{name} {params}: {result.details['aux_faces']} aux faces, "
          f"{time.perf_counter() - start:.0f} s, val_ssim {result.details['val_ssim']:.3f}")
    for k in ("cosine", "match_rate", "ssim", "psnr"):
        print(f"  {k:<10} adaptive {agg[k]:.3f}  naive {agg['naive_' + k]:.3f}")
    gain = attack.gain(result)
    assert gain["cosine"] > 0 or gain["match_rate"] > 0
