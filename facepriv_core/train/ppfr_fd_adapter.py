"""The PPFR-FD service's recogniser: an input adapter in front of dlib-resnet's frozen server part.

The paper widens ArcFace's first layer and trains the whole network on masked tensors. With no
large training set here, the adapter alone is trained by distillation: it maps the 34 x 14 x 14
wire to dlib-resnet's features at a split stage, and the frozen rest of dlib-resnet turns them
into an embedding that should match the clean face's (loss 1 - cosine, plus a feature MSE).

Shuffle2 reorders the channels at random for every image, so the adapter is built to be
invariant to channel order (each channel goes through the same encoder, then channels are
pooled and softly sorted into learnt slots by their own content), and it is trained on wires
with a fresh Shuffle2 every step, exactly as the server would receive them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.defences.keys import KeySource
from facepriv_core.defences.ppfr_fd import (
    PPFRParams,
    block_dct,
    mask_coefficients,
    shuffle2_permutations,
    to_grey112,
    wire_channels,
)
from facepriv_core.embedding import embed_batched
from facepriv_core.train.control import Cancel, TrainProgress, cancelled

#: The adapter replaces dlib-resnet's stem and level4 blocks and outputs level4.2's features.
DEFAULT_STAGE = "level4.2"
INIT_SEED = 0
CHECKPOINT_KIND = "ppfr_fd_adapter"
#: Defence params the adapter depends on (shape and content of the wire); the seed is secret
#: and never stored, only the key's fingerprint.
WIRE_PARAMS = ("channels", "selection", "drop_dc", "mix")


def stage_shape(stage: str) -> tuple[int, int, int]:
    """(C, H, W) of dlib-resnet's output at `stage` for a 150 chip."""
    from facepriv_core import models

    model = models.get("dlib-resnet", "cpu")
    with torch.no_grad():
        return tuple(model.features(torch.zeros(1, 3, 150, 150), upto=stage)[stage].shape[1:])


class FrequencyAdapter(nn.Module):
    """(N, C, 14, 14) masked wire, channels in any order -> dlib features (N, *out_shape).

    Order invariance: a shared per-channel encoder, then (a) mean and max over channels and
    (b) `slots` soft assignments (softmax over channels of a score computed from each
    channel's own encoded statistics), so a slot can learn to pick "the channel that looks
    like frequency band k" wherever Shuffle2 has put it.
    """

    def __init__(self, in_channels: int, out_shape: tuple[int, int, int], width: int = 64,
                 enc: int = 8, slots: int = 16) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "out_shape": list(out_shape),
                       "width": width, "enc": enc, "slots": slots}
        self.out_shape = tuple(out_shape)
        self.encoder = nn.Sequential(nn.Conv2d(1, enc, 3, padding=1), nn.GELU(),
                                     nn.Conv2d(enc, enc, 3, padding=1), nn.GELU())
        self.scorer = nn.Linear(2 * enc, slots)
        self.trunk = nn.Sequential(nn.Conv2d((slots + 2) * enc, width, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.GELU())
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(width, out_shape[0], 1))

    def forward(self, wire: torch.Tensor) -> torch.Tensor:
        n, c, h, w = wire.shape
        e = self.encoder(wire.reshape(n * c, 1, h, w)).reshape(n, c, -1, h, w)
        stats = torch.cat([e.mean(dim=(3, 4)), e.std(dim=(3, 4))], dim=2)  # (n, c, 2 enc)
        weights = self.scorer(stats).softmax(dim=1)  # over channels: (n, c, slots)
        slotted = torch.einsum("ncs,ncfhw->nsfhw", weights, e).flatten(1, 2)
        pooled = torch.cat([e.mean(dim=1), e.amax(dim=1)], dim=1)
        y = self.trunk(torch.cat([slotted, pooled], dim=1))
        y = F.interpolate(y, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return self.head(y)


def new_adapter(in_channels: int, stage: str = DEFAULT_STAGE, seed: int = INIT_SEED
                ) -> FrequencyAdapter:
    """A freshly initialised adapter; the seed makes the untrained baseline reproducible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FrequencyAdapter(in_channels, stage_shape(stage))


def untrained_adapter(in_channels: int, device: torch.device | str
                      ) -> tuple[FrequencyAdapter, dict[str, Any]]:
    """The fallback utility model when no checkpoint is given: seeded init, no training."""
    adapter = new_adapter(in_channels).to(device).eval().requires_grad_(False)
    return adapter, {"trained": False, "stage": DEFAULT_STAGE, "train_images": 0, "epochs": 0}


def load_adapter(path: str | Path, device: torch.device | str
                 ) -> tuple[FrequencyAdapter, dict[str, Any]]:
    """A trained adapter from a checkpoint (tensors and plain values only: weights_only)."""
    from facepriv_core import checkpoints

    ckpt = checkpoints.load(path, CHECKPOINT_KIND, "PPFR-FD adapter checkpoint")
    cfg = ckpt["config"]
    adapter = FrequencyAdapter(cfg["in_channels"], tuple(cfg["out_shape"]), cfg["width"],
                               cfg["enc"], cfg["slots"])
    adapter.load_state_dict(ckpt["state_dict"])
    info = {k: v for k, v in ckpt.items() if k not in ("state_dict", "config")}
    return adapter.to(device).eval().requires_grad_(False), {**info, "trained": True}


def check_compatible(info: dict[str, Any], params: PPFRParams) -> None:
    """Refuse an adapter trained for a wire of another shape or content."""
    want = {k: getattr(params, k) for k in WIRE_PARAMS}
    if info["defence_params"] != want:
        from facepriv_core.errors import CheckpointError

        raise CheckpointError("the adapter was trained for PPFR-FD params "
                              f"{info['defence_params']}, not {want}")


def _chips(data: Any) -> tuple[np.ndarray, str]:
    """uint8 (N, 150, 150, 3) chips from a dataset spec, a FaceDataset or chips themselves."""
    from facepriv_core import datasets

    if isinstance(data, np.ndarray):
        return data, f"{len(data)} given chips"
    ds = datasets.load(data) if isinstance(data, str) else data
    return datasets.align_dataset(ds).chips, ds.name


def _wires(x: torch.Tensor, params: PPFRParams, key: Any, rng: torch.Generator
           ) -> torch.Tensor:
    perms = shuffle2_permutations(x.shape[0], wire_channels(params), rng)
    return mask_coefficients(block_dct(to_grey112(x)), params, key["shuffle1"], perms)


def evaluate(adapter: nn.Module, server: nn.Module, chips: np.ndarray, targets: torch.Tensor,
             params: PPFRParams, key: Any, device: torch.device, batch: int = 64,
             seed: int = 1) -> dict[str, float]:
    """Utility on faces, one Shuffle2 each: mean cosine of server(adapter(wire)) to the clean
    embedding, and top-1: the share whose nearest clean embedding among these faces is their
    own (dlib embeddings of any two faces have cosine ~0.8, so cosine alone flatters)."""

    rng = torch.Generator(device=device).manual_seed(seed)
    emb = embed_batched(server, chips, batch, device,
                        fn=lambda m, x: m(adapter(_wires(x, params, key, rng))))
    with torch.no_grad():
        nearest = torch.cdist(emb, targets).argmin(dim=1).cpu()
    return {"cosine": float(F.cosine_similarity(emb, targets, dim=1).mean()),
            "top1": float((nearest == torch.arange(len(chips))).float().mean())}


def train_ppfr_fd_adapter(
    data: Any,
    out: str | Path | None = None,
    *,
    params: PPFRParams | None = None,
    epochs: int = 10,
    max_images: int | None = None,
    val_images: int = 60,
    batch_size: int = 32,
    lr: float = 2e-3,
    feature_weight: float = 0.5,
    stage: str = DEFAULT_STAGE,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: TrainProgress | None = None,
    cancel: Cancel | None = None,
    key_source: KeySource | None = None,
) -> dict[str, Any]:
    """Distil clean dlib-resnet embeddings into adapter + frozen server; return the checkpoint.

    key_source: the client's key source the wires are made with (its Shuffle1); None uses the
    reproducible source of `seed` (not secret). Only its fingerprint is stored.

    data: 'sfhq:PATH'-style spec, a FaceDataset or uint8 chips (N, 150, 150, 3); faces are
    aligned, shuffled with `seed`, the last `val_images` held out. Every step draws a fresh
    Shuffle2 and a random horizontal flip. progress(step, total, loss) after each step;
    cancel stops after the current step (the checkpoint then says cancelled=True).
    The checkpoint is saved to `out` when given.
    """
    from facepriv_core import models
    from facepriv_core.defences.ppfr_fd import PPFRFD
    from facepriv_core.faces import chips_to_tensor

    params = params or PPFRParams()
    dev = models.resolve_device(device)
    chips, source = _chips(data)
    order = np.random.default_rng(seed).permutation(len(chips))
    if max_images is not None:
        order = order[:max_images]
    if len(order) <= val_images:
        raise ValueError(f"{len(order)} faces are too few for {val_images} held-out ones")
    train, val = chips[order[:-val_images]], chips[order[-val_images:]]

    model = models.get("dlib-resnet", dev)
    shallow, server = model.split(stage)
    key = PPFRFD(dev).key_for(params, key_source or KeySource.from_seed(seed))
    val_targets = embed_batched(model, val, 64, dev, fn=lambda m, x: m(x))
    train_targets = embed_batched(model, train, 64, dev, fn=lambda m, x: m(x))

    adapter = new_adapter(wire_channels(params), stage).to(dev)
    before = evaluate(adapter, server, val, val_targets, params, key, dev)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1),
                                                pct_start=0.1)
    gen = torch.Generator(device=dev).manual_seed(seed)
    perm_rng = np.random.default_rng(seed + 1)
    step, stopped, started = 0, False, time.monotonic()
    for _ in range(epochs):
        for idx in np.array_split(perm_rng.permutation(len(train)), steps_per_epoch):
            x = chips_to_tensor(train[idx], dev)
            flip = torch.from_numpy(perm_rng.random(len(idx)) < 0.5).to(dev)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            with torch.no_grad():
                feats = shallow(x)
                target = server(feats)
            pred = adapter(_wires(x, params, key, gen))
            cos = F.cosine_similarity(server(pred), target, dim=1).mean()
            feat_loss = F.mse_loss(pred, feats) / feats.pow(2).mean().clamp_min(1e-8)
            loss = 1 - cos + feature_weight * feat_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if progress:
                progress(step, total, loss.item())
            if cancelled(cancel):
                stopped = True
                break
        if stopped:
            break

    train_after = evaluate(adapter, server, train, train_targets, params, key, dev)
    after = evaluate(adapter, server, val, val_targets, params, key, dev)
    ckpt = {
        "kind": CHECKPOINT_KIND,
        "version": 1,
        "stage": stage,
        "config": adapter.config,
        "state_dict": {k: v.detach().cpu() for k, v in adapter.state_dict().items()},
        "defence_params": {k: getattr(params, k) for k in WIRE_PARAMS},
        "key_fingerprint": key.fingerprint(),
        "data": source,
        "train_images": len(train),
        "val_images": len(val),
        "epochs": epochs,
        "steps": step,
        "cancelled": stopped,
        "train_cosine": train_after["cosine"],
        "val_cosine": after["cosine"],
        "val_top1": after["top1"],
        "val_cosine_untrained": before["cosine"],
        "val_top1_untrained": before["top1"],
        "seconds": time.monotonic() - started,
        "device": str(dev),
    }
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, out)
    return ckpt
