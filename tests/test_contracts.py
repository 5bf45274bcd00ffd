"""Contracts every registered plugin keeps: defences declare consistent capabilities, attacks
apply exactly where the capabilities they need are offered, and every applicable pair runs.

Parametrised over the registries, so a new defence or attack is covered without an edit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facepriv_core import attacks, datasets, defences, faces
from facepriv_core.attacks.base import AttackCase, missing_capabilities
from facepriv_core.defences.base import (
    CAPABILITIES,
    Defence,
    DefenceParams,
    Protected,
    PublicTransform,
)
from facepriv_core.defences.baselines import image_protected

N = 4  # faces per contract case: two people, two photos each


def contract_params(name: str) -> dict[str, Any]:
    """Defaults, made cheap for optimising defences (one step) and given the auxiliary faces
    the ones that need them cannot default (see `aux_fixture`)."""
    d = defences.get(name)
    fields = d.Params.model_fields
    out: dict[str, Any] = {}
    if d.optimising and "steps" in fields:
        out["steps"] = 1
    if "decoder_epochs" in fields:
        out.update(decoder_epochs=1, aux="sfhq:contract-fixture", aux_limit=4)
    return out


@pytest.fixture(scope="module")
def chips(olivetti_path: Path) -> torch.Tensor:
    ds = datasets.load(f"olivetti:{olivetti_path}")
    pick = [0, 1, 10, 11]  # persons 0 and 1, two photos each
    return faces.chips_to_tensor(datasets.align_dataset(ds.subset(pick)).chips)


@pytest.fixture(scope="module")
def aux_fixture(olivetti_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Auxiliary faces (Olivetti persons 30-31) for defences and attacks that train on them,
    returned by load_aux without aligning a dataset; a fresh cache for their checkpoints."""
    from facepriv_core.attacks import decoder_inversion
    from facepriv_core.defences import advface

    ds = datasets.load(f"olivetti:{olivetti_path}")
    aux = datasets.align_dataset(ds.subset(list(range(300, 320)))).chips
    emb = np.full((len(aux), 128), 10.0)  # far from every victim: none is excluded

    def load(spec: str, limit: int, seed: int = 0, use_cache: bool = True) -> Any:
        k = min(limit, len(aux))
        return aux[:k], [str(i) for i in range(k)], emb[:k]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEPRIV_CACHE", str(tmp_path_factory.mktemp("contract-cache")))
        mp.setattr(advface, "load_aux", load)
        mp.setattr(decoder_inversion, "load_aux", load)
        yield load


@pytest.fixture(scope="module")
def protected(chips: torch.Tensor, aux_fixture: Any) -> dict[str, tuple[Defence, DefenceParams,
                                                                         Protected]]:
    out = {}
    for name in defences.names():
        d = defences.get(name)
        p = d.Params(**contract_params(name))
        out[name] = (d, p, d.protect(chips, p, torch.Generator().manual_seed(0)))
    return out


@pytest.mark.parametrize("name", defences.names())
def test_defence_protects_and_declares_consistent_capabilities(
        name: str, chips: torch.Tensor, protected: dict[str, Any]) -> None:
    d, p, prot = protected[name]
    assert prot.wire_kind == d.wire_kind
    assert prot.wire.shape[0] >= N and torch.isfinite(prot.wire.float()).all()
    assert prot.preview.dtype == np.uint8 and prot.preview.shape[0] == prot.wire.shape[0]
    assert set(d.capabilities) <= set(CAPABILITIES), "undeclared capability names"
    assert "simulate" in d.capabilities
    transform = d.public_transform(p)
    known = {"known_blur", "known_blocks", "known_noise"}
    if transform is None:
        assert not ({"public_transform"} | known) & d.capabilities
    else:
        assert isinstance(transform, PublicTransform)
        assert transform.implied_capabilities() == (d.capabilities & ({"public_transform"}
                                                                       | known))
        with torch.no_grad():
            model = transform.apply(chips).float()
        wire = prot.wire[:N].float()
        assert model.shape == wire.shape
        tolerance = 1.5 / 255 if transform.noise_sigma is None else 4 * transform.noise_sigma
        assert (model - wire).abs().mean() <= tolerance, "public transform does not model wire"


@pytest.mark.parametrize("name", defences.names())
def test_simulate_never_uses_the_victims_key(name: str, chips: torch.Tensor,
                                             protected: dict[str, Any]) -> None:
    d, p, prot = protected[name]
    sim = d.simulate(chips, p, torch.Generator().manual_seed(12345))
    assert sim.wire_kind == prot.wire_kind and sim.wire.shape == prot.wire.shape
    if prot.key is not None:
        assert sim.key is not None and sim.key.fingerprint() != prot.key.fingerprint()
        again = d.simulate(chips, p, torch.Generator().manual_seed(12345))
        assert again.key is not None and again.key.fingerprint() == sim.key.fingerprint(), \
            "the attacker's key follows its own seed (audits repeat)"


@pytest.mark.parametrize("attack_name", attacks.names())
@pytest.mark.parametrize("defence_name", defences.names())
def test_applicability_follows_from_capabilities(attack_name: str, defence_name: str,
                                                 protected: dict[str, Any]) -> None:
    a = attacks.get(attack_name)
    d, _, prot = protected[defence_name]
    assert set(a.needs) <= set(CAPABILITIES)
    needs = a.needs_for(prot.wire_kind)
    offered = prot.wire_kind in a.applies_to and needs <= d.capabilities
    reason = a.applicable(prot, d)
    if not offered:
        assert reason is not None, f"{attack_name} applies to {defence_name} without its needs"
    else:
        # Beyond capabilities an attack may only refuse a wire it cannot read (shape).
        assert reason is None or "shape" in reason or "shaped" in reason, reason


class Downscale(Defence[DefenceParams]):
    """A new image defence no attack has heard of: a public, key-free 2x box downscale."""

    name = "contract-downscale"
    title = "Downscale (contract test)"
    wire_kind = "image"
    Params = DefenceParams
    capabilities = frozenset({"simulate", "public_transform"})

    @staticmethod
    def _apply(x: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)
        return torch.nn.functional.interpolate(small, size=x.shape[-2:], mode="nearest")

    def public_transform(self, params: DefenceParams) -> PublicTransform:
        return PublicTransform(apply=self._apply)

    def protect(self, x: torch.Tensor, params: Any, rng: torch.Generator, progress: Any = None,
                cancel: Any = None) -> Protected:
        return image_protected(self._apply(x))


def test_a_new_image_defence_is_covered_by_capabilities(chips: torch.Tensor) -> None:
    d = Downscale()
    prot = d.protect(chips, d.Params(), torch.Generator())
    applicable = {n for n in attacks.names() if attacks.get(n).applicable(prot, d) is None}
    assert {"whitebox_inversion", "adaptive_decoder", "identity", "decoder_inversion"} <= \
        applicable
    assert not {"wiener_deblur", "superres", "denoise", "facemix_unmix"} & applicable
    reason = missing_capabilities("x", frozenset({"known_blur"}), d)
    assert reason is not None and "known kernel" in reason


#: Attack params that keep a contract run to seconds; attacks absent here use defaults.
FAST_ATTACKS: dict[str, dict[str, Any]] = {
    "whitebox_inversion": {"steps": 2},
    "facemix_unmix": {"steps": 2},
    "decoder_inversion": {"epochs": 1, "aux": "sfhq:contract-fixture", "aux_limit": 8},
    "adaptive_decoder": {"epochs": 1, "aux": "sfhq:contract-fixture", "aux_limit": 8},
    "ppfr_fd_whitebox": {"aux": "sfhq:contract-fixture", "aux_limit": 8},
    "identity": {"other_recognisers": False},
    "attribute": {},
    "wiener_deblur": {"other_recognisers": False},
    "superres": {"other_recognisers": False},
    "denoise": {"other_recognisers": False},
}


def _pairs() -> list[tuple[str, str]]:
    return [(d, a) for d in defences.names() for a in attacks.names()]


@pytest.mark.slow
@pytest.mark.parametrize(("defence_name", "attack_name"), _pairs())
def test_every_applicable_pair_runs(defence_name: str, attack_name: str, chips: torch.Tensor,
                                    protected: dict[str, Any]) -> None:
    d, p, prot = protected[defence_name]
    a = attacks.get(attack_name)
    if a.applicable(prot, d) is not None:
        pytest.skip(f"{attack_name} does not apply to {defence_name}")
    fields = a.Params.model_fields
    params = a.Params(**{k: v for k, v in FAST_ATTACKS.get(attack_name, {}).items()
                         if k in fields})
    case = AttackCase(original=chips, protected=prot, defence=d, defence_params=p,
                      identities=np.array([0, 0, 1, 1]), seed=0)
    result = a.run(case, params)
    assert len(result.per_image) == N
    assert any(np.isfinite(v) for row in result.per_image for v in row.values())
    assert set(result.threat_model.knows) >= {"wire"}


FAST_PAIRS = [("blur", "identity"), ("pixelate", "superres"), ("blur", "wiener_deblur"),
              ("noise", "denoise"), ("noise", "whitebox_inversion"), ("xnn", "identity"),
              ("facemix", "facemix_unmix"), ("split", "whitebox_inversion")]


@pytest.mark.parametrize(("defence_name", "attack_name"), FAST_PAIRS)
def test_fast_applicable_pairs_run(defence_name: str, attack_name: str, chips: torch.Tensor,
                                   protected: dict[str, Any]) -> None:
    test_every_applicable_pair_runs(defence_name, attack_name, chips, protected)
