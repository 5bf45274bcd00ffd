"""Training the SAN autoencoder (Mirjalili et al., ICB 2018) against Cydral gender and dlib.

The paper's three losses, per batch of faces with gender labels y:
- pixel: the output made with the same-gender prototype should equal the input;
- gender: Cydral should read y on that output and 1 - y on the opposite-prototype output;
- matcher: the opposite-prototype output (the one released) keeps the dlib descriptor.
Prototypes are the average aligned face of each gender in the training split.

Labels: SFHQ's weak grid labels where the manifest has them (`sfhq:PATH`), else Cydral's own
prediction on the original, which is also what the defence uses at protection time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from facepriv_core import datasets, models
from facepriv_core.cancel import Cancel
from facepriv_core.defences.san import (
    CHECKPOINT_KIND,
    SanAutoencoder,
    gender_facts,
    gender_logits,
    matcher_loss,
    prototype_for,
)
from facepriv_core.faces import chips_to_tensor
from facepriv_core.train.loop import (
    TrainProgress,
    epoch_batches,
    save_checkpoint,
    steps_per_epoch,
    train_loop,
)

if TYPE_CHECKING:
    from facepriv_core.models.cydral import CydralGender

GENDERS = ("female", "male")  # Cydral's column order
INIT_SEED = 0


def labelled_chips(data: Any, max_images: int | None = None, seed: int = 0
                   ) -> tuple[np.ndarray, list[str], list[str], str]:
    """(uint8 chips, weak labels '' / 'female' / 'male', keys, source name) from a dataset spec,
    a FaceDataset, uint8 chips (N, 150, 150, 3) or a (chips, labels) pair; at most
    `max_images` of them, drawn with `seed` before the (slow) alignment."""
    if isinstance(data, tuple | np.ndarray):
        chips, labels = data if isinstance(data, tuple) else (data, [""] * len(data))
        keep = np.arange(len(chips))
        if max_images is not None and max_images < len(chips):
            keep = np.sort(np.random.default_rng(seed).choice(len(chips), max_images, False))
        return (chips[keep], [str(labels[i]) for i in keep], [str(i) for i in keep],
                f"{len(chips)} given chips")
    weak: dict[str, str] = {}
    if isinstance(data, str):
        kind, _, arg = data.partition(":")
        if kind == "sfhq" and arg:
            weak = {r.file: r.gender for r in datasets.read_sfhq_manifest(arg)}
        data = datasets.load(data)
    ds = data.limit(max_images, seed)
    aligned = datasets.align_dataset(ds)
    keys = [ds.keys[i] if ds.keys else str(i) for i in aligned.indices]
    return aligned.chips, [weak.get(k, "") for k in keys], keys, ds.name


def _batches(chips: np.ndarray, device: torch.device, size: int = 32) -> list[torch.Tensor]:
    return [chips_to_tensor(chips[i:i + size], device) for i in range(0, len(chips), size)]


def evaluate(net: SanAutoencoder, prototypes: torch.Tensor, chips: np.ndarray,
             gender: CydralGender, recognizer: torch.nn.Module, device: torch.device
             ) -> dict[str, float]:
    """The defence's view on held-out faces: prototypes picked by Cydral's prediction, flip
    rate and dlib cosine of the same, neutral and opposite versions (8-bit quantised)."""
    x = torch.cat(_batches(chips, device))
    with torch.no_grad():
        labels = gender.probabilities(x).argmax(dim=1)
        ref = F.normalize(recognizer(x), dim=1)
        versions = {t: net(x, prototype_for(prototypes, labels, t)).mul(255).round().div(255)
                    for t in ("same", "neutral", "opposite")}
    return gender_facts(versions, labels, ref, gender, recognizer)


def train_san_autoencoder(
    data: Any,
    out: str | Path | None = None,
    *,
    epochs: int = 5,
    max_images: int | None = None,
    val_images: int = 40,
    batch_size: int = 16,
    lr: float = 3e-3,
    pixel_weight: float = 1000.0,
    gender_weight: float = 1.0,
    matcher_weight: float = 1.0,
    width: int = 32,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: TrainProgress | None = None,
    cancel: Cancel | None = None,
) -> dict[str, Any]:
    """Train the SAN autoencoder with the paper's losses; return (and save to `out`) the
    checkpoint: weights, prototypes, held-out keys and before/after held-out metrics.

    Faces are shuffled with `seed` and the last `val_images` held out (they make neither the
    prototypes nor the gradients). progress(step, total, loss) after each step; cancel stops
    after the current step (the checkpoint then says cancelled=True).
    """
    dev = models.resolve_device(device)
    chips, weak, keys, source = labelled_chips(data, max_images, seed)
    order = np.random.default_rng(seed).permutation(len(chips))
    if len(order) <= val_images:
        raise ValueError(f"{len(order)} faces are too few for {val_images} held-out ones")
    train_idx, val_idx = order[:-val_images], order[-val_images:]
    gender = models.get("cydral-gender", dev)
    recognizer = models.get("dlib-resnet", dev)

    train = chips[train_idx]
    with torch.no_grad():
        xs = _batches(train, dev)
        predicted = torch.cat([gender.probabilities(x).argmax(dim=1) for x in xs]).cpu()
        targets = torch.cat([F.normalize(recognizer(x), dim=1) for x in xs]).cpu()
    given = [weak[i] for i in train_idx]
    labels = torch.tensor([GENDERS.index(g) if g in GENDERS else int(p)
                           for g, p in zip(given, predicted.tolist(), strict=True)])
    if labels.min() == labels.max():
        raise ValueError("the training faces are all of one gender: no prototypes to swap")
    train_x = torch.cat(xs).cpu()
    prototypes = torch.stack([train_x[labels == k].mean(dim=0) for k in (0, 1)]).to(dev)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED + seed)
        net = SanAutoencoder(width).to(dev)
    val = chips[val_idx]
    before = evaluate(net.eval(), prototypes, val, gender, recognizer, dev)
    total = epochs * steps_per_epoch(len(train), batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    started = time.monotonic()

    def step(idx: np.ndarray) -> torch.Tensor:
        x = chips_to_tensor(train[idx], dev)
        y = labels[idx].to(dev)
        same = net(x, prototype_for(prototypes, y, "same"))
        opposite = net(x, prototype_for(prototypes, y, "opposite"))
        logits = gender_logits(gender, torch.cat([same, opposite]))
        return (pixel_weight * F.mse_loss(same, x)
                + gender_weight * F.cross_entropy(logits, torch.cat([y, 1 - y]))
                + matcher_weight * matcher_loss(recognizer, opposite,
                                                targets[idx].to(dev)).mean())

    net.train()
    run = train_loop(epoch_batches(len(train), batch_size, epochs, np.random.default_rng(seed + 1)),
                     step, opt, total=total, progress=progress, cancel=cancel)

    after = evaluate(net.eval(), prototypes, val, gender, recognizer, dev)
    ckpt = {
        "kind": CHECKPOINT_KIND,
        "version": 1,
        "config": net.config,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "prototypes": prototypes.cpu(),
        "data": source,
        "train_images": len(train),
        "labels_weak": sum(g in GENDERS for g in given),
        "labels_predicted": sum(g not in GENDERS for g in given),
        "train_female": int((labels == 0).sum()),
        "train_male": int((labels == 1).sum()),
        "val_keys": [keys[i] for i in val_idx],
        "epochs": epochs,
        "steps": run.steps,
        "cancelled": run.cancelled,
        "weights": [pixel_weight, gender_weight, matcher_weight],
        **{f"val_{k}": v for k, v in after.items()},
        **{f"val_{k}_untrained": v for k, v in before.items()},
        "seconds": time.monotonic() - started,
        "device": str(dev),
    }
    if out is not None:
        save_checkpoint(ckpt, out)
    return ckpt
