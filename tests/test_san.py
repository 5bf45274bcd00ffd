"""SAN (Mirjalili et al., ICB 2018): Cydral gender flips, dlib identity stays."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from facepriv_core import defences
from facepriv_core.defences.base import ProtectionCancelled
from facepriv_core.faces import chips_to_tensor

GRIDS = ("SFHQ_variability_age_X_ethnicity_1", "SFHQ_variability_age_X_ethnicity_2")
ADULT = ("16", "30", "70")


@pytest.fixture(scope="module")
def adult_faces(sfhq_faces, sfhq_rows) -> tuple[np.ndarray, list[str]]:
    """12 adults with a weak gender label: 6 asian women and 6 african men, all three ages."""
    chips, genders = [], []
    for grid in GRIDS:
        rows = [r for r in sfhq_rows if r["grid"] == grid and r["age_years"] in ADULT]
        taken = 0
        for r in rows[::6]:
            face = sfhq_faces.face(r["file"])
            if face is not None and taken < 6:
                chips.append(face.chip150)
                genders.append(r["gender"])
                taken += 1
    return np.stack(chips), genders


@pytest.fixture(scope="module")
def san() -> defences.Defence:
    return defences.get("san")


def test_per_image_flips_gender_and_keeps_identity(san, adult_faces) -> None:
    chips, genders = adult_faces
    x = chips_to_tensor(chips)
    started = time.monotonic()
    out = san.protect(x, san.params(), torch.Generator().manual_seed(0))
    per_face = (time.monotonic() - started) / len(x)
    m = dict(out.metrics)
    print(f"\nSAN optimise on {len(x)} adults ({genders.count('female')} f / "
          f"{genders.count('male')} m weak labels): flip rate {m['flip_rate']:.2f}, dlib cosine "
          f"mean {m['cosine']:.4f} min {m['cosine_min']:.4f}, p(original gender) "
          f"{m['p_original_gender']:.4f}, {per_face:.2f} s/face")
    assert out.wire_kind == "image" and out.image is not None
    assert out.wire.shape == x.shape and out.preview.shape == (len(x), 150, 150, 3)
    assert torch.equal(out.wire, out.wire.mul(255).round().div(255))  # an 8-bit upload
    assert m["flip_rate"] >= 0.8
    assert m["cosine"] >= 0.8
    assert (x - out.wire).abs().mean() < 0.05  # a perturbation, not a new face


def test_same_target_keeps_gender(san, adult_faces) -> None:
    x = chips_to_tensor(adult_faces[0][:2])
    out = san.protect(x, san.params(target="same", steps=5), torch.Generator())
    assert out.metrics["flip_rate"] == 0.0


def test_deterministic(san, adult_faces) -> None:
    x = chips_to_tensor(adult_faces[0][:2])
    p = san.params(steps=4, target="neutral")
    a = san.protect(x, p, torch.Generator().manual_seed(1))
    b = san.protect(x, p, torch.Generator().manual_seed(1))
    assert torch.equal(a.wire, b.wire)


def test_progress_and_cancel(san, adult_faces) -> None:
    x = chips_to_tensor(adult_faces[0][:1])
    seen: list[tuple[int, int]] = []
    san.protect(x, san.params(steps=3), torch.Generator(),
                progress=lambda s, n: seen.append((s, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ProtectionCancelled):
        san.protect(x, san.params(steps=50), torch.Generator(),
                    progress=lambda s, n: seen.append((s, n)), cancel=lambda: len(seen) >= 5)
    assert len(seen) == 5


def test_params_validated(san, tmp_path) -> None:
    for bad in ({"steps": 0}, {"lr": 0}, {"target": "male"}, {"pixel_weight": -1},
                {"unknown": 1}, {"mode": "autoencoder"},
                {"checkpoint": str(tmp_path / "x.pt")}):
        with pytest.raises(ValidationError):
            san.params(**bad)
    missing = san.params(mode="autoencoder", checkpoint=str(tmp_path / "missing.pt"))
    from facepriv_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"facepriv train san"):
        san.protect(torch.rand(1, 3, 150, 150), missing, torch.Generator())


def test_trainer_checkpoint_loads_into_defence(san, adult_faces, tmp_path) -> None:
    """A one-step training on given chips: the checkpoint format, cancel, and the
    autoencoder mode reporting all three versions (weights barely trained: no quality claim)."""
    from facepriv_core.train import train_san_autoencoder

    chips, genders = adult_faces
    stop = threading.Event()
    stop.set()
    ckpt = train_san_autoencoder((chips[:8], genders[:8]), tmp_path / "san.pt", epochs=3,
                                 val_images=2, batch_size=3, width=8, cancel=stop)
    assert ckpt["cancelled"] and ckpt["steps"] == 1
    assert ckpt["prototypes"].shape == (2, 3, 150, 150) and ckpt["labels_weak"] == 6
    assert len(ckpt["val_keys"]) == 2
    p = san.params(mode="autoencoder", checkpoint=str(tmp_path / "san.pt"))
    out = san.protect(chips_to_tensor(chips[8:10]), p, torch.Generator())
    assert out.wire.shape == (2, 3, 150, 150)
    assert {"same_flip_rate", "neutral_cosine", "opposite_flip_rate",
            "opposite_cosine_min"} <= set(out.metrics)
    torch.save({"kind": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a SAN autoencoder checkpoint"):
        san.protect(chips_to_tensor(chips[:1]),
                    san.params(mode="autoencoder", checkpoint=str(tmp_path / "other.pt")),
                    torch.Generator())


def test_cli_has_san() -> None:
    from facepriv_core.cli import build_parser

    args = build_parser().parse_args(["train", "san", "--data", "sfhq:/d", "--out", "s.pt",
                                      "--epochs", "2"])
    assert args.defence == "san" and args.epochs == 2 and args.func.__name__ == "cmd_san"


@pytest.mark.slow
def test_trained_autoencoder_on_held_out_faces(san, sfhq_dir, sfhq_faces, tmp_path) -> None:
    """Minutes of CPU training on the SFHQ folder, then the defence on the held-out faces."""
    from facepriv_core.train import train_san_autoencoder

    started = time.monotonic()
    ckpt = train_san_autoencoder(f"sfhq:{sfhq_dir}", tmp_path / "san.pt", epochs=3,
                                 max_images=240, val_images=40)
    print(f"\ntrained on {ckpt['train_images']} faces ({ckpt['labels_weak']} weak labels, "
          f"{ckpt['labels_predicted']} Cydral-predicted), {ckpt['steps']} steps, "
          f"{time.monotonic() - started:.0f} s")
    faces = [sfhq_faces.face(k) for k in ckpt["val_keys"]]
    x = chips_to_tensor(np.stack([f.chip150 for f in faces if f is not None]))
    out = san.protect(x, san.params(mode="autoencoder", checkpoint=str(tmp_path / "san.pt")),
                      torch.Generator())
    m = dict(out.metrics)
    for v in ("same", "neutral", "opposite"):
        print(f"held-out {len(x)} faces, {v:8s}: flip rate {m[f'{v}_flip_rate']:.2f}, "
              f"p(original) {m[f'{v}_p_original_gender']:.3f}, dlib cosine "
              f"{m[f'{v}_cosine']:.4f} (min {m[f'{v}_cosine_min']:.4f}); untrained flip "
              f"{ckpt[f'val_{v}_flip_rate_untrained']:.2f}")
    assert ckpt["steps"] > 0 and not ckpt["cancelled"]
    assert m["opposite_cosine"] >= 0.8
    assert m["opposite_flip_rate"] >= m["same_flip_rate"]


def test_protect_under_no_grad_still_optimises(san) -> None:
    """Callers (benches, previews) may protect under torch.no_grad(): SAN's per-image
    optimisation must still get its gradients."""
    x = torch.rand(1, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = san.protect(x, san.params(steps=2), torch.Generator().manual_seed(0))
    assert out.image is not None and not torch.equal(out.image, x)
