"""PPFR-FD (Wang et al., AAAI 2022): block DCT, channel selection, fast masking, key, adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch

from facepriv_core import defences, models
from facepriv_core.defences.keys import KeySource
from facepriv_core.defences.ppfr_fd import (
    FrequencyProtected,
    PPFRParams,
    block_dct,
    block_idct,
    mask_coefficients,
    selected_channels,
    shuffle1_permutation,
    shuffle2_permutations,
    to_grey112,
    zigzag_order,
)
from facepriv_core.faces import chips_to_tensor

N_FACES = 50


@pytest.fixture(scope="module")
def sfhq_chips(sfhq_faces) -> np.ndarray:
    """dlib chips of the first N_FACES manifest files that align."""
    return sfhq_faces.chips(N_FACES)

@pytest.fixture(scope="module")
def defence() -> defences.Defence:
    return defences.get("ppfr_fd")


def protect(defence: defences.Defence, x: torch.Tensor, seed: int = 0,
            **params: object) -> FrequencyProtected:
    return defence.protect(x, defence.Params(**params), torch.Generator().manual_seed(seed),
                           key=KeySource.from_seed(seed))


def test_energy_dropped_and_wire_shape(defence, sfhq_chips: np.ndarray) -> None:
    p = protect(defence, chips_to_tensor(sfhq_chips))
    print(f"PPFR-FD energy dropped over {len(sfhq_chips)} SFHQ faces: "
          f"{p.metrics['energy_dropped']:.4f}")
    assert p.wire.shape == (N_FACES, 34, 14, 14)
    assert p.wire_shape == (34, 14, 14) and p.wire_kind == "frequency"
    assert p.metrics["energy_dropped"] >= 0.90
    assert torch.isfinite(p.wire).all()
    assert p.preview.dtype == np.uint8 and p.preview.shape[0] == N_FACES


def test_zigzag_selection() -> None:
    zz = zigzag_order()
    assert zz[:6] == [0, 1, 8, 16, 9, 2] and sorted(zz) == list(range(64))
    kept = selected_channels(PPFRParams())
    assert len(kept) == 35 and 0 not in kept
    assert {divmod(c, 8) for c in kept} == {(u, v) for u in range(8) for v in range(8)
                                             if 0 < u + v <= 7}
    spread = selected_channels(PPFRParams(selection="zigzag_spread"))
    assert len(spread) == 35 and 63 in spread


def test_block_dct_matches_scipy_and_inverts(astronaut: np.ndarray) -> None:
    x = chips_to_tensor(astronaut[100:250, 150:300])
    grey = to_grey112(x).double()
    coef = block_dct(grey)
    assert coef.shape == (1, 64, 14, 14)
    g = grey[0, 0].numpy()
    for bi, bj in [(0, 0), (3, 7), (13, 13)]:
        ref = scipy.fft.dctn(g[bi * 8:bi * 8 + 8, bj * 8:bj * 8 + 8], norm="ortho")
        np.testing.assert_allclose(coef[0, :, bi, bj].reshape(8, 8).numpy(), ref, atol=1e-10)
    assert (block_idct(coef) - grey).abs().max() < 1e-4
    coef32 = block_dct(grey.float())
    assert (block_idct(coef32) - grey.float()).abs().max() < 1e-4


def test_shuffle1_from_the_key_source(defence) -> None:
    """A reproducible source fixes Shuffle1; the default secret source differs every time."""
    a = defence.key_for(PPFRParams(), KeySource.from_seed(1234))
    b = defence.key_for(PPFRParams(), KeySource.from_seed(1234))
    c = defence.key_for(PPFRParams(), KeySource.from_seed(1235))
    assert torch.equal(a["shuffle1"], b["shuffle1"]) and a.fingerprint() == b.fingerprint()
    assert not torch.equal(a["shuffle1"], c["shuffle1"])
    assert sorted(a["shuffle1"].tolist()) == list(range(35))
    assert a.reproducible and "not secret" in a.label
    s1, s2 = (defence.key_for(PPFRParams(), KeySource.secret()) for _ in range(2))
    assert s1.fingerprint() != s2.fingerprint() and not s1.reproducible
    assert "shuffle_seed" not in PPFRParams.model_fields


def test_shuffle2_differs_per_image(defence, sfhq_chips: np.ndarray) -> None:
    perms = shuffle2_permutations(4, 34, torch.Generator().manual_seed(0))
    assert len({tuple(p.tolist()) for p in perms}) == 4
    # the same face twice and another face, one rng: each gets its own channel order
    x = chips_to_tensor(sfhq_chips[[0, 0, 1]])
    wire = protect(defence, x).wire
    assert not torch.allclose(wire[0], wire[1])
    # ... and the two copies hold the same channels, only reordered
    gap = (wire[0][:, None] - wire[1][None]).abs().amax(dim=(2, 3)).amin(dim=1)
    assert gap.max() < 1e-4


def test_protect_deterministic_under_seed(defence, sfhq_chips: np.ndarray) -> None:
    x = chips_to_tensor(sfhq_chips[:4])
    a, b = protect(defence, x, seed=7), protect(defence, x, seed=7)
    c = protect(defence, x, seed=8)
    assert torch.equal(a.wire, b.wire) and a.metrics == b.metrics
    assert not torch.equal(a.wire, c.wire)


def test_masking_is_the_documented_pipeline(defence, sfhq_chips: np.ndarray) -> None:
    """Normalisation is per position across channels: the wire has mean 0, std 1 there."""
    p = protect(defence, chips_to_tensor(sfhq_chips[:3]))
    mean, std = p.wire.mean(dim=1), p.wire.std(dim=1, correction=0)
    assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-2
    x = chips_to_tensor(sfhq_chips[:2])
    coef = block_dct(to_grey112(x))
    params = PPFRParams(mix=False)
    ident = torch.arange(35).expand(2, 35)
    wire = mask_coefficients(coef, params, torch.arange(35), ident)
    kept = coef[:, selected_channels(params)]
    # no mixing, identity shuffles: the kept channels self-normalised twice
    ref = (kept - kept.mean(1, keepdim=True)) / (kept.std(1, keepdim=True, correction=0) + 1e-4)
    assert wire.shape == (2, 35, 14, 14)
    torch.testing.assert_close(wire, (ref - ref.mean(1, keepdim=True))
                               / (ref.std(1, keepdim=True, correction=0) + 1e-4))


def test_key_and_protected_repr_hide_the_permutation(defence, sfhq_chips: np.ndarray) -> None:
    seed = 987654321
    p = protect(defence, chips_to_tensor(sfhq_chips[:2]), seed=seed)
    perm = shuffle1_permutation(KeySource.from_seed(seed), 35)
    assert torch.equal(p.key["shuffle1"], perm)
    for text in (repr(p), str(p), repr(p.key), str(p.key), repr(p.metrics), p.utility_model):
        assert str(seed) not in text
        assert str(perm.tolist()) not in text and str(perm) not in text
        assert ", ".join(map(str, perm.tolist()[:5])) not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(p.key)


def test_untrained_utility_is_labelled(defence, sfhq_chips: np.ndarray, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With no trained service in the cache, utility runs untrained and every output says so."""
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
    x = chips_to_tensor(sfhq_chips[:2])
    p = protect(defence, x)
    assert "untrained" in p.utility_model.lower() and p.metrics["adapter_trained"] == 0.0
    assert not defence.service_ready(defence.Params())
    emb = p.utility_embedding(models.get("dlib-resnet"))
    assert emb.shape == (2, 128) and torch.isfinite(emb).all()
