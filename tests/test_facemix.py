"""FaceMix: exact decryption through a linear server, measured (inexact) decryption through
dlib's non-linear server, key handling, and the mixing-aware server trainer."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from facepriv_core import datasets, defences, models
from facepriv_core.defences.facemix import CHECKPOINT_KIND, LinearHead, group_indices
from facepriv_core.defences.keys import KeySource
from facepriv_core.faces import chips_to_tensor
from facepriv_core.train.facemix_server import train_facemix_server

N_SFHQ = 20


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> np.ndarray:
    """Chips of the first N_SFHQ manifest files (sorted) in which exactly one face is found."""
    return sfhq_faces.chips(N_SFHQ, sort=True, single_face=True)

@pytest.fixture(scope="module")
def faces(chips: np.ndarray) -> torch.Tensor:
    return chips_to_tensor(chips)


def protect(x: torch.Tensor, seed: int = 0, **params: object) -> defences.Protected:
    d = defences.get("facemix")
    return d.protect(x, d.params(**params), torch.Generator().manual_seed(seed),
                     key=KeySource.from_seed(seed))


def linear_reference(x: torch.Tensor, stage: str = "level4.0") -> torch.Tensor:
    shallow, _ = models.get("dlib-resnet", "cpu").split(stage)
    with torch.no_grad():
        feats = shallow(x)
        return LinearHead(feats.shape[1])(feats)


@pytest.mark.parametrize(("n", "size", "coefficients"),
                         [(20, 4, "uniform"), (7, 4, "gaussian"), (20, 16, "uniform")])
def test_linear_head_decrypts_exactly_on_faces(faces: torch.Tensor, n: int, size: int,
                                               coefficients: str) -> None:
    x = faces[:n]
    p = protect(x, server="linear", group_size=size, coefficients=coefficients)
    err = (p.utility_embedding(None) - linear_reference(x)).abs().max().item()
    print(f"\nFaceMix linear head, {n} faces, S_G={size}, {coefficients}: max |error| {err:.2e}")
    assert err < 1e-4
    assert p.metrics["decryption_max_abs_error"] < 1e-4
    assert p.wire.shape[0] == -(-n // size) * size
    assert p.metrics["padded_rows"] == p.wire.shape[0] - n


def test_linear_head_decrypts_exactly_on_random_tensors() -> None:
    x = torch.rand(6, 3, 150, 150, generator=torch.Generator().manual_seed(5))
    p = protect(x, server="linear", group_size=3, coefficients="gaussian", stage="level3.0")
    assert (p.utility_embedding(None) - linear_reference(x, "level3.0")).abs().max() < 1e-4


def test_dlib_server_decryption_is_measured_and_inexact(faces: torch.Tensor) -> None:
    p = protect(faces)
    with torch.no_grad():
        clean = models.get("dlib-resnet", "cpu")(faces)
    cos = F.cosine_similarity(p.utility_embedding(None), clean, dim=1).mean().item()
    reported = p.metrics["decryption_cosine"]
    gauss = protect(faces[:8], coefficients="gaussian").metrics["decryption_cosine"]
    print(f"\nFaceMix dlib server decryption cosine (S_G=4): uniform {reported:.4f}, "
          f"gaussian {gauss:.4f}")
    assert np.isfinite(reported) and -1.0 <= reported <= 1.0
    assert reported == pytest.approx(cos, abs=1e-5)
    assert reported < 0.999
    # With the split before the (linear) head only, the dlib server decrypts exactly.
    assert protect(faces[:8], stage="level0.0").metrics["decryption_cosine"] > 0.9999


def test_mixed_features_differ_from_every_single_face(faces: torch.Tensor) -> None:
    x = faces[:8]
    p = protect(x)
    shallow, _ = models.get("dlib-resnet", "cpu").split("level4.0")
    with torch.no_grad():
        feats = shallow(x).flatten(1)
    wire = p.wire.flatten(1)
    rel = torch.cdist(wire, feats) / feats.norm(dim=1)
    print(f"\nFaceMix smallest relative distance wire row -> single face: {rel.min():.3f}")
    assert rel.min() > 0.05


def test_mixing_matrices_are_well_conditioned_convex_mixes(faces: torch.Tensor) -> None:
    p = protect(faces[:16], group_size=8, cond_max=50.0)
    assert p.key is not None
    a = p.key["matrices"]
    assert a.shape == (2, 8, 8)
    assert torch.linalg.cond(a).max() <= 50.0
    assert (a > 0).all() and torch.allclose(a.sum(dim=2), torch.ones(2, 8, dtype=a.dtype))
    g = protect(faces[:4], coefficients="gaussian", cond_max=20.0).key
    assert g is not None and torch.linalg.cond(g["matrices"]).max() <= 20.0
    with pytest.raises(ValueError, match="raise cond_max"):
        protect(faces[:16], group_size=16, cond_max=2.0)


def test_padding_and_single_face_batches(faces: torch.Tensor) -> None:
    assert group_indices(6, 4).tolist() == [[0, 1, 2, 3], [4, 5, 0, 1]]
    assert group_indices(3, 4).tolist() == [[0, 1, 2, 0]]
    one = protect(faces[:1])
    assert one.wire.shape[0] == 4 and one.utility_embedding(None).shape == (1, 128)
    assert one.metrics["min_distinct_per_group"] == 1.0
    assert protect(faces[:6]).metrics["min_distinct_per_group"] == 4.0


def test_deterministic_under_a_seed_and_key_never_shown(faces: torch.Tensor) -> None:
    x = faces[:4]
    a, b, c = protect(x, seed=1), protect(x, seed=1), protect(x, seed=2)
    assert a.key is not None and b.key is not None and c.key is not None
    assert torch.equal(a.wire, b.wire) and a.key.fingerprint() == b.key.fingerprint()
    assert a.key.fingerprint() != c.key.fingerprint()
    d = defences.get("facemix")
    s1, s2 = (d.protect(x, d.params(), torch.Generator().manual_seed(1)) for _ in range(2))
    assert s1.key is not None and s2.key is not None
    assert s1.key.fingerprint() != s2.key.fingerprint() and not s1.key.reproducible
    shown = repr(a) + str(a) + repr(a.key) + str(a.key)
    assert "SecretKey" in shown and "tensor" not in shown
    assert f"{a.key['matrices'][0, 0, 0].item():.4f}" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(a.key)
    assert "facemix" in defences.names()


def test_params_validation() -> None:
    d = defences.get("facemix")
    with pytest.raises(ValidationError):
        d.params(server="trained")
    with pytest.raises(ValidationError):
        d.params(server_path="x.pt")
    with pytest.raises(ValidationError):
        d.params(group_size=1)
    with pytest.raises(ValidationError):
        d.params(coefficients="laplace")


def test_trained_checkpoint_loading(faces: torch.Tensor, tmp_path: Path) -> None:
    """A checkpoint of the unchanged server must reproduce server='dlib' exactly."""
    _, server = models.get("dlib-resnet", "cpu").split("level4.0")
    path = tmp_path / "server.pt"
    torch.save({"kind": CHECKPOINT_KIND, "stage": "level4.0", "state_dict": server.state_dict()},
               path)
    x = faces[:8]
    trained = protect(x, server="trained", server_path=str(path))
    assert torch.allclose(trained.utility_embedding(None), protect(x).utility_embedding(None))
    with pytest.raises(ValueError, match="trained for stage"):
        protect(x, server="trained", server_path=str(path), stage="level3.0")


def test_trainer_reports_progress_and_honours_cancel(chips: np.ndarray, tmp_path: Path) -> None:
    seen: list[tuple[int, int, float]] = []
    stop = threading.Event()

    def progress(step: int, total: int, loss: float) -> None:
        seen.append((step, total, loss))
        if step == 2:
            stop.set()

    result = train_facemix_server(chips[:8], tmp_path / "s.pt", steps=10, groups_per_step=1,
                                  heldout=0.5, progress=progress, cancel=stop)
    assert [s for s, _, _ in seen] == [1, 2] and all(t == 10 for _, t, _ in seen)
    assert result.cancelled and result.steps == 2 and result.path is None
    assert result.heldout_after is None
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.slow
def test_trainer_improves_heldout_decryption(sfhq_dir: Path, tmp_path: Path) -> None:
    aligned = datasets.align_dataset(datasets.load(f"sfhq:{sfhq_dir}")).chips
    path = tmp_path / "facemix_server.pt"
    result = train_facemix_server(aligned, path, steps=150, groups_per_step=4, seed=0)
    held = chips_to_tensor(aligned[result.heldout_indices])
    before = protect(held, seed=9).metrics["decryption_cosine"]
    after = protect(held, seed=9, server="trained", server_path=str(path)).metrics[
        "decryption_cosine"]
    print(f"\nFaceMix trainer: {result.n_train} training faces, {len(held)} held out; "
          f"held-out decryption cosine {result.heldout_before:.4f} -> "
          f"{result.heldout_after:.4f} (trainer's matrices), {before:.4f} -> {after:.4f} "
          f"(defence, fresh matrices)")
    assert result.path == path and path.is_file()
    assert result.heldout_after > result.heldout_before + 0.02
    assert after > before + 0.02
