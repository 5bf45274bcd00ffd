"""Fine-tune dlib's server part so FaceMix decryption works through its non-linearity.

FaceMix decrypts A^-1 server(A f), which equals server(f) only for a linear server. This trains
the server part (the client part stays frozen) with mixing in the loop, with the loss
1 - cos(A^-1 server(A f), clean embedding), so that the decrypted outputs match what the
pretrained network gives on the clean faces. The client's features and the clean targets are
computed once (with horizontally flipped copies as augmentation); each step mixes a fresh
random batch with fresh matrices. A held-out split measures the decryption cosine before and
after with fixed matrices, and the checkpoint is what `facemix` loads with server='trained'.

Usage: facepriv train facemix --data sfhq:PATH --out server.pt
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core import datasets, models
from facepriv_core.cancel import Cancel, cancelled
from facepriv_core.defences.facemix import (
    CHECKPOINT_KIND,
    Coefficients,
    group_indices,
    mix,
    mixing_matrices,
    unmix,
)
from facepriv_core.faces import chips_to_tensor
from facepriv_core.models.dlib_resnet import DEFAULT_SPLIT
from facepriv_core.train.loop import TrainProgress, save_checkpoint, train_loop

_CHUNK = 32


@dataclass(frozen=True)
class TrainResult:
    """What a run did: held-out decryption cosines before/after, and where it saved.

    A cancelled run stops at once: no `heldout_after`, nothing saved (`path` None).
    """

    path: Path | None
    steps: int
    cancelled: bool
    heldout_before: float
    heldout_after: float | None
    n_train: int
    heldout_indices: np.ndarray


def _chips(data: str | np.ndarray, progress: Callable[[int, int], None] | None) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    return datasets.align_dataset(datasets.load(data), progress).chips


def _batched(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module(x[i:i + _CHUNK]) for i in range(0, len(x), _CHUNK)])


def decryption_cosine(server: nn.Module, feats: torch.Tensor, clean: torch.Tensor,
                      group_size: int, coefficients: Coefficients, cond_max: float,
                      seed: int = 0) -> float:
    """Mean cos(A^-1 server(A f), clean) over the faces, with matrices drawn from `seed`."""
    groups = group_indices(len(feats), group_size)
    a = mixing_matrices(len(groups), group_size, coefficients, cond_max,
                        torch.Generator().manual_seed(seed))
    step = max(1, _CHUNK // group_size)
    decrypted = []
    with torch.no_grad():
        for i in range(0, len(groups), step):
            out = server(mix(feats, groups[i:i + step], a[i:i + step]))
            decrypted.append(unmix(out.double(), a[i:i + step]).float())
    dec = torch.cat(decrypted)[:len(feats)]
    return float(F.cosine_similarity(dec, clean, dim=1).mean())


def train_facemix_server(
    data: str | np.ndarray,
    out: str | Path,
    *,
    stage: str = DEFAULT_SPLIT,
    group_size: int = 4,
    coefficients: Coefficients = "uniform",
    cond_max: float = 100.0,
    steps: int = 200,
    groups_per_step: int = 4,
    lr: float = 1e-4,
    heldout: float = 0.2,
    seed: int = 0,
    device: str | None = None,
    progress: TrainProgress | None = None,
    cancel: Cancel | None = None,
    align_progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fine-tune the dlib server part after `stage` for FaceMix; save it to `out`.

    data: a dataset spec for datasets.load ('sfhq:PATH', 'folder:PATH', ...) or uint8 chips
    (N, 150, 150, 3). progress(step, total, loss) is called after every step; cancel (a
    callable or threading.Event) stops the run early, and then nothing is saved.
    """
    dev = models.resolve_device(device)
    chips = _chips(data, align_progress)
    order = np.random.default_rng(seed).permutation(len(chips))
    n_held = round(len(chips) * heldout)
    held_idx, train_idx = np.sort(order[:n_held]), order[n_held:]
    if len(train_idx) < group_size * groups_per_step or n_held < group_size:
        raise ValueError(f"{len(chips)} faces are too few for group_size {group_size}, "
                         f"{groups_per_step} groups per step and a {heldout:.0%} held-out split")

    shallow, server = models.get("dlib-resnet", dev).split(stage)
    x_train = chips_to_tensor(chips[train_idx], dev)
    x_train = torch.cat([x_train, x_train.flip(-1)])
    f_train = _batched(shallow, x_train)
    t_train = _batched(server, f_train)
    f_held = _batched(shallow, chips_to_tensor(chips[held_idx], dev))
    t_held = _batched(server, f_held)
    del x_train

    trainable = copy.deepcopy(server).requires_grad_(True).train()
    eval_args = (group_size, coefficients, cond_max, seed)
    before = decryption_cosine(trainable, f_held, t_held, *eval_args)
    opt = torch.optim.Adam(trainable.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    batch = group_size * groups_per_step

    def step(_: int) -> torch.Tensor:
        idx = torch.randperm(len(f_train), generator=gen)[:batch].to(dev)
        a = mixing_matrices(groups_per_step, group_size, coefficients, cond_max, gen)
        groups = torch.arange(batch).view(groups_per_step, group_size)
        decrypted = unmix(trainable(mix(f_train[idx], groups, a)), a)
        return 1 - F.cosine_similarity(decrypted, t_train[idx], dim=1).mean()

    done = 0
    if not cancelled(cancel):
        done = train_loop(range(steps), step, opt, total=steps, progress=progress,
                          cancel=cancel).steps
    if done < steps:
        return TrainResult(path=None, steps=done, cancelled=True, heldout_before=before,
                           heldout_after=None, n_train=len(train_idx), heldout_indices=held_idx)
    after = decryption_cosine(trainable.eval(), f_held, t_held, *eval_args)
    ckpt = {"kind": CHECKPOINT_KIND, "stage": stage, "group_size": group_size,
            "coefficients": coefficients, "cond_max": cond_max, "steps": steps,
            "heldout_before": before, "heldout_after": after,
            "state_dict": {k: v.cpu() for k, v in trainable.state_dict().items()}}
    path = save_checkpoint(ckpt, out)
    return TrainResult(path=path, steps=done, cancelled=False, heldout_before=before,
                       heldout_after=after, n_train=len(train_idx), heldout_indices=held_idx)
