"""The learned decoder wire -> face (a small U-Net), its training and its disk cache.

The decoder attacks (decoder_inversion, adaptive_decoder) train it on auxiliary faces
protected with a defence's public algorithm, and AdvFace trains it as its shadow attacker.
Trained decoders are cached under <FacePriv cache>/decoders, named by the caller's digest of
everything that shaped them (`config_digest`); bump ARCHITECTURE when WireDecoder changes.
Training runs on train.loop; cancel raises facepriv_core.cancel.Cancelled, which the callers
turn into their own AttackCancelled / ProtectionCancelled.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core import models
from facepriv_core.cache import cache_root, config_digest  # noqa: F401 (re-exported)
from facepriv_core.cancel import Cancel, Cancelled, check_cancel
from facepriv_core.defences.base import Defence, DefenceParams
from facepriv_core.defences.keys import KeySource
from facepriv_core.faces import chips_to_tensor, tensor_to_chips
from facepriv_core.metrics import ssim_torch
from facepriv_core.progress import ProgressEvent, ProgressFn
from facepriv_core.train.loop import steps_per_epoch, train_loop

OUTPUT_SIZE = 150
HALF = OUTPUT_SIZE // 2


@dataclasses.dataclass(frozen=True)
class DecoderRecipe:
    """Decoder training settings for callers other than the attack (AdvFace's shadow
    decoder). The attack's DecoderParams has the same fields and takes its defaults from
    DEFAULT_RECIPE, so a cache digest of either names the same training."""

    aux: str = ""
    aux_limit: int = 300
    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-3
    loss: str = "l1+ssim"
    width: int = 16
    val_fraction: float = 0.1
    device: str = "auto"

    def config(self) -> dict[str, Any]:
        """The settings that decide the trained weights (the device does not)."""
        out = dataclasses.asdict(self)
        out.pop("device")
        return out


DEFAULT_RECIPE = DecoderRecipe()


class DecoderSettings(Protocol):
    """What decoder training reads from its caller's params (decoder_inversion.DecoderParams)."""

    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def loss(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def device(self) -> str: ...


def _block(c_in: int, c_out: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1),
                   nn.GroupNorm(min(8, c_out), c_out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


#: Bumped when WireDecoder changes, so cached checkpoints of an older network are not reused.
ARCHITECTURE = 2


class WireDecoder(nn.Module):
    """A small U-Net from a wire (C, H, W) or (D,) to a 3 x 150 x 150 face in [0, 1].

    Vector wires (embeddings) enter through a linear layer onto a 10 x 10 grid. The U-Net body
    works at the wire's resolution (two halvings while the map is at least 8 px); a head then
    doubles the resolution towards 75 px, and a sub-pixel convolution (pixel shuffle) gives
    150 px at a quarter of the cost of convolving at full resolution.

    Image wires (a blurred or pixelated face) are residual: the output is the wire plus a
    learned correction in logit space, and the correction starts at zero, so an untrained
    decoder returns the wire itself and training can only start from the naive attacker.
    """

    def __init__(self, wire_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        self.wire_shape = tuple(wire_shape)
        if len(wire_shape) == 1:
            self.grid = 10
            self.stem: nn.Module = nn.Sequential(
                nn.Linear(wire_shape[0], width * self.grid**2), nn.LeakyReLU(0.2),
                nn.Unflatten(1, (width, self.grid, self.grid)), _block(width, width))
            size = self.grid
        else:
            self.stem = _block(wire_shape[0], width)
            size = wire_shape[1]
        ch = width
        self.downs = nn.ModuleList()
        while len(self.downs) < 2 and size >= 8:
            self.downs.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1),
                                            nn.LeakyReLU(0.2), _block(2 * ch, 2 * ch)))
            ch, size = 2 * ch, (size + 1) // 2
        self.ups = nn.ModuleList()
        for _ in self.downs:
            self.ups.append(_block(ch + ch // 2, ch // 2))
            ch //= 2
        self.head = nn.ModuleList()
        while size * 2 < HALF:
            self.head.append(_block(ch, max(ch // 2, 16), convs=1))
            ch, size = max(ch // 2, 16), size * 2
        self.last = _block(ch, 16, convs=1)
        self.out = nn.Conv2d(16, 12, 3, padding=1)
        self.residual = self.wire_shape == (3, 2 * HALF, 2 * HALF)
        if self.residual:
            assert self.out.bias is not None  # nn.Conv2d has a bias unless bias=False
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, wire: torch.Tensor) -> torch.Tensor:
        x = self.stem(wire)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        for block in self.head:
            x = block(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        x = self.last(F.interpolate(x, size=(HALF, HALF), mode="bilinear", align_corners=False))
        delta = F.pixel_shuffle(self.out(x), 2)
        if self.residual:
            return torch.sigmoid(torch.logit(wire.clamp(1e-3, 1 - 1e-3)) + delta)
        return torch.sigmoid(delta)


def cache_dir() -> Path:
    """Trained decoders and aligned auxiliary sets, under the one FacePriv cache root."""
    return cache_root() / "decoders"


def load_cached_decoder(path: Path, width: int, device: torch.device
                        ) -> tuple[WireDecoder, dict[str, Any]]:
    """A decoder saved by `save_decoder`, in eval mode, and its training info."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    decoder = WireDecoder(tuple(ckpt["wire_shape"]), width).to(device)
    decoder.load_state_dict(ckpt["state"])
    decoder.eval()
    return decoder, ckpt["info"]


def save_decoder(path: Path, decoder: WireDecoder, info: dict[str, Any],
                 config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": decoder.state_dict(), "wire_shape": list(decoder.wire_shape),
                "info": info, "config": config}, path)


def decoder_loss(y: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean L1 of a reconstruction batch to the faces, plus 0.5 (1 - SSIM) for 'l1+ssim'."""
    loss = (y - x).abs().mean()
    if kind == "l1+ssim":
        loss = loss + 0.5 * (1 - ssim_torch(y, x).mean())
    return loss


def train_decoder(defence: Defence, defence_params: DefenceParams, aux: np.ndarray,
                  params: DecoderSettings, *, seed: int = 0,
                  preview_wire: torch.Tensor | None = None, progress: ProgressFn | None = None,
                  cancel: Cancel | None = None) -> tuple[WireDecoder, dict[str, Any]]:
    """Train a decoder on auxiliary chips (uint8 NHWC) protected by `defence` with fresh rng.

    Each training batch is protected anew with its own generator, so the decoder sees many
    keys and noise draws; the validation faces are protected once. The weights with the lowest
    validation loss are returned, with a summary of the training.
    """
    start = time.perf_counter()
    dev = models.resolve_device(params.device)
    x_all = chips_to_tensor(aux)
    order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(params.val_fraction * len(x_all)))
    x_val, x_train = x_all[order[:n_val]], x_all[order[n_val:]]
    if len(x_train) == 0:
        raise ValueError("too few auxiliary faces to train a decoder")

    def protect(x: torch.Tensor, rng_seed: int) -> torch.Tensor:
        # The attacker's own keys (a keyed defence's victim key is unknown to it), seeded
        # from the attack's seed so the attack repeats; never the victim's key source.
        keys = KeySource.from_seed(rng_seed).derive("attacker's simulated client")
        wire = defence.protect_keyed(x, defence_params, torch.Generator().manual_seed(rng_seed),
                                     keys).wire
        return wire[: len(x)].float().to(dev)

    w_val = protect(x_val, seed + 1)
    y_val = x_val.to(dev)
    decoder = WireDecoder(tuple(w_val.shape[1:]), params.width).to(dev)
    opt = torch.optim.Adam(decoder.parameters(), lr=params.lr)
    shown = (preview_wire if preview_wire is not None else w_val[:1]).float().to(dev)

    def validate() -> tuple[float, float]:
        decoder.eval()
        with torch.no_grad():
            y = torch.cat([decoder(w_val[i:i + 64]) for i in range(0, len(w_val), 64)])
        decoder.train()
        return float(decoder_loss(y, y_val, params.loss)), float(ssim_torch(y, y_val).mean())

    best_state, (best_val, best_ssim) = copy.deepcopy(decoder.state_dict()), validate()
    train_loss = float("nan")
    gen = torch.Generator().manual_seed(seed + 2)
    number = 0
    for epoch in range(params.epochs):
        perm = torch.randperm(len(x_train), generator=gen)
        check_cancel(cancel, Cancelled, "decoder training cancelled")

        def step(b: int, perm: torch.Tensor = perm) -> torch.Tensor:
            xb = x_train[perm[b:b + params.batch_size]]
            wb = protect(xb, int(torch.randint(2**62, (1,), generator=gen)))
            return decoder_loss(decoder(wb), xb.to(dev), params.loss)

        run = train_loop(range(0, len(perm), params.batch_size), step, opt,
                         total=params.epochs * steps_per_epoch(len(perm), params.batch_size),
                         cancel=cancel, first_step=number + 1)
        number += run.steps
        if run.cancelled:
            raise Cancelled("decoder training cancelled")
        losses = run.losses
        train_loss = float(np.mean(losses))
        val_loss, val_ssim = validate()
        if val_loss < best_val:
            best_state, best_val, best_ssim = (copy.deepcopy(decoder.state_dict()), val_loss,
                                               val_ssim)
        if progress:
            with torch.no_grad():
                decoder.eval()
                shown_img = decoder(shown)
                decoder.train()
            progress(ProgressEvent(epoch + 1, params.epochs, tensor_to_chips(shown_img[:1])[0], {
                "train_loss": train_loss, "val_loss": val_loss, "val_ssim": val_ssim},
                phase=f"training decoder {epoch + 1}/{params.epochs}"))
    decoder.load_state_dict(best_state)
    decoder.eval()
    info = {"n_train": len(x_train), "n_val": n_val, "epochs": params.epochs,
            "train_loss": train_loss, "val_loss": best_val, "val_ssim": best_ssim,
            "device": str(dev), "train_seconds": time.perf_counter() - start}
    return decoder, info
