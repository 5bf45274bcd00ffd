"""XNN: the keyed server is exact, the keyless server learns nothing identifying, keys behave."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facepriv_core import defences, models
from facepriv_core.defences.keys import KeySource
from facepriv_core.defences.xnn import inverse_transform, keyed_server, transform
from facepriv_core.faces import chips_to_tensor

N_SFHQ = 20


@pytest.fixture(scope="module")
def faces(sfhq_faces) -> torch.Tensor:
    """Chips of the first N_SFHQ manifest files (sorted) in which exactly one face is found."""
    return chips_to_tensor(sfhq_faces.chips(N_SFHQ, sort=True, single_face=True))

@pytest.fixture(scope="module")
def clean(faces: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return models.get("dlib-resnet", "cpu")(faces)


def protect(x: torch.Tensor, seed: int = 0, **params: object) -> defences.Protected:
    d = defences.get("xnn")
    return d.protect(x, d.params(**params), torch.Generator().manual_seed(seed),
                     key=KeySource.from_seed(seed))


@pytest.mark.parametrize("stage", ["stem", "level4.0", "level3.0", "level0.0"])
def test_keyed_server_is_exact(faces: torch.Tensor, clean: torch.Tensor, stage: str) -> None:
    n = len(faces) if stage == "level4.0" else 6  # all 20 faces at the default split
    p = protect(faces[:n], stage=stage, cond_max=100.0)
    cos = F.cosine_similarity(p.utility_embedding(None), clean[:n], dim=1)
    print(f"\nXNN keyed utility cosine at {stage}: mean {cos.mean():.6f}, min {cos.min():.6f}")
    assert cos.min() >= 0.999
    assert p.metrics["keyed_cosine"] == pytest.approx(float(cos.mean()), abs=1e-6)


def test_keyless_server_learns_no_identity(faces: torch.Tensor, clean: torch.Tensor) -> None:
    """dlib descriptors are not centred: different faces already score ~0.84 raw cosine, so the
    raw keyless cosine is judged against that impostor level; centred, it must be < 0.5."""
    p = protect(faces)
    _, server = models.get("dlib-resnet", "cpu").split("level4.0")
    with torch.no_grad():
        keyless = server(p.wire)
    raw = F.cosine_similarity(keyless, clean, dim=1).mean().item()
    sims = F.normalize(clean, dim=1) @ F.normalize(clean, dim=1).T
    impostor = sims[~torch.eye(len(clean), dtype=torch.bool)].mean().item()
    mean = clean.mean(dim=0)
    centred = F.cosine_similarity(keyless - mean, clean - mean, dim=1).mean().item()
    cross = F.normalize(keyless, dim=1) @ F.normalize(clean, dim=1).T
    rank1 = (cross.argmax(dim=1) == torch.arange(len(clean))).float().mean().item()
    deep = protect(faces[:8], stage="level0.0").metrics["keyless_cosine"]
    print(f"\nXNN keyless cosine (level4.0): raw {raw:.4f} (impostor level {impostor:.4f}), "
          f"centred {centred:.4f}, rank-1 identification {rank1:.2f}; raw at level0.0 {deep:.4f}")
    assert raw == pytest.approx(p.metrics["keyless_cosine"], abs=1e-6)
    assert raw < impostor + 0.02
    assert centred < 0.5
    assert rank1 <= 0.25
    assert deep < 0.5


def test_key_is_a_permutation_and_a_well_conditioned_matrix(faces: torch.Tensor) -> None:
    p = protect(faces[:2], cond_max=25.0)
    assert p.key is not None
    perm, m = p.key["perm"], p.key["M"]
    assert torch.equal(torch.sort(perm).values, torch.arange(32))
    assert not torch.equal(perm, torch.arange(32))
    assert torch.linalg.cond(m).item() <= 25.0 * (1 + 1e-9)
    assert p.metrics["key_cond"] == pytest.approx(25.0, rel=1e-6)


def test_wire_is_m_p_f_and_the_fold_matches_an_explicit_inverse(faces: torch.Tensor) -> None:
    x = faces[:3]
    p = protect(x)
    assert p.key is not None
    shallow, server = models.get("dlib-resnet", "cpu").split("level4.0")
    with torch.no_grad():
        feats = shallow(x)
        perm, m = p.key["perm"], p.key["M"]
        expected = torch.einsum("ij,njhw->nihw", m.float(), feats[:, perm])
        recovered = torch.einsum("ij,njhw->nihw", inverse_transform(perm, m).float(), p.wire)
        folded = keyed_server(server, inverse_transform(perm, m))(p.wire)
    assert torch.allclose(p.wire, expected, atol=1e-5)
    assert torch.allclose(transform(feats, perm, m), p.wire)
    assert torch.allclose(recovered, feats, atol=1e-4)
    assert torch.allclose(folded, server(feats), atol=1e-4)
    assert (p.wire - feats).abs().mean() > 0.1 * feats.abs().mean()
    assert p.wire_kind == "features" and p.preview.dtype == np.uint8


def test_reproducible_key_repeats_and_default_key_is_fresh(faces: torch.Tensor) -> None:
    x = faces[:2]
    a, b, c = protect(x, seed=3), protect(x, seed=3), protect(x, seed=4)
    assert a.key is not None and b.key is not None and c.key is not None
    assert torch.equal(a.wire, b.wire) and a.key.fingerprint() == b.key.fingerprint()
    assert a.key.fingerprint() != c.key.fingerprint()
    assert a.key.reproducible and "not secret" in repr(a.key)
    # the key belongs to the source, not to the run's generator
    d = defences.get("xnn")
    k1 = d.protect(x, d.params(), torch.Generator().manual_seed(1), key=KeySource.from_seed(7))
    k2 = d.protect(x, d.params(), torch.Generator().manual_seed(2), key=KeySource.from_seed(7))
    assert k1.key is not None and k2.key is not None
    assert k1.key.fingerprint() == k2.key.fingerprint() and torch.equal(k1.wire, k2.wire)
    # default: a fresh secret key from OS entropy, whatever the seed
    s1 = d.protect(x, d.params(), torch.Generator().manual_seed(0))
    s2 = d.protect(x, d.params(), torch.Generator().manual_seed(0))
    assert s1.key is not None and s2.key is not None and not s1.key.reproducible
    assert s1.key.fingerprint() != s2.key.fingerprint()
    assert "key_seed" not in d.Params.model_fields


def test_key_never_shown(faces: torch.Tensor) -> None:
    p = protect(faces[:1])
    assert p.key is not None
    shown = repr(p) + str(p) + repr(p.key) + str(p.key)
    m = p.key["M"]
    assert "SecretKey" in shown
    assert f"{m[0, 0].item():.4f}" not in shown and "tensor" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(p.key)
    assert "xnn" in defences.names()
