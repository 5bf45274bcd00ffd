"""Learned-decoder inversion (PMT "Level 1", RecFace-style): train a network wire -> face.

The attacker holds auxiliary faces of other people and the defence's public algorithm. It
protects those faces itself (fresh keys and noise for every batch, since the victim's secret
key is unknown), learns a decoder from the wires back to the faces, and applies it to the
wires it intercepted. Following Pu et al., "Facial Data Minimization: Shallow Model as Your
Privacy Filter" (Level 1), and the decoder attacks of RecFace-like evaluations.

Auxiliary faces never include the attacked people: every auxiliary face whose dlib descriptor
lies within the recogniser's same-person distance (0.6) of an attacked face is dropped. This
removes exact copies when the auxiliary set is the attacked dataset, and other photos of the
same people, without needing shared identity labels.

Trained decoders are cached per defence configuration under $FACEPRIV_CACHE/decoders (default
~/.cache/facepriv/decoders), named by a hash of the defence name and params, the decoder's
training params and the auxiliary faces excluded; aligned auxiliary chips are cached alongside.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from facepriv_core import models
from facepriv_core.attacks import _rules, register
from facepriv_core.attacks._common import preview, score_rows, ssim_torch, stage_for
from facepriv_core.attacks.base import (
    Attack,
    AttackCase,
    AttackParams,
    AttackResult,
    CancelFn,
    ProgressEvent,
    ProgressFn,
    ThreatModel,
    check_cancel,
)
from facepriv_core.defences.base import Defence, DefenceParams, Protected
from facepriv_core.defences.keys import KeySource
from facepriv_core.embedding import embed_numpy
from facepriv_core.faces import chips_to_tensor
from facepriv_core.verdicts import Rule

OUTPUT_SIZE = 150
HALF = OUTPUT_SIZE // 2


class DecoderParams(AttackParams):
    aux: str = Field("", description="auxiliary faces as a dataset spec, e.g. sfhq:PATH or "
                                     "folder:PATH (empty: this machine's SFHQ or LFW); "
                                     "must not be the attacked people")
    aux_limit: int = Field(300, ge=2, le=100_000, description="auxiliary faces to sample")
    epochs: int = Field(20, ge=0, le=1000, description="training epochs (0: untrained decoder)")
    batch_size: int = Field(16, ge=1, le=1024)
    lr: float = Field(2e-3, gt=0.0, le=1.0, description="Adam learning rate")
    loss: Literal["l1", "l1+ssim"] = Field("l1+ssim", description="L1, or L1 + 0.5 (1 - SSIM)")
    width: int = Field(16, ge=8, le=256, description="channels of the first decoder block (16 "
                                                     "trains on 2 CPU cores; 32+ on a GPU)")
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5,
                                description="share of auxiliary faces held out for validation")
    device: str = Field("auto", description="training device: auto (GPU when present), cpu, cuda")
    use_cache: bool = Field(True, description="reuse and save trained decoders")


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
    from facepriv_core.cache import cache_root

    return cache_root() / "decoders"


def config_digest(obj: Any) -> str:
    """Short stable hash of a JSON-able configuration: the name of its cached files."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


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


def resolve_aux(spec: str, who: str) -> str:
    """`spec`, or this machine's default auxiliary set when it is empty (typed error if none)."""
    from facepriv_core import data_sources
    from facepriv_core.errors import UsageError

    if spec:
        return spec
    found = data_sources.default_aux()
    if found is None:
        raise UsageError(data_sources.missing_aux_message(who))
    return found


def load_aux(spec: str, limit: int, seed: int = 0, use_cache: bool = True
             ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(uint8 chips, keys, dlib descriptors) of up to `limit` aligned auxiliary faces.

    Alignment (face detection) dominates the cost, so the result is cached by spec and limit.
    """
    from facepriv_core import datasets

    spec = resolve_aux(spec, "decoder_inversion")
    path = cache_dir() / f"aux-{config_digest([spec, limit, seed])}.npz"
    if use_cache and path.is_file():
        with np.load(path) as f:
            return f["chips"], [str(k) for k in f["keys"]], f["embeddings"]
    ds = datasets.load(spec).limit(limit, seed)
    aligned = datasets.align_dataset(ds)
    keys = [ds.keys[i] if ds.keys else str(i) for i in aligned.indices]
    net = models.get("dlib-resnet")
    emb = embed_numpy(net, aligned.chips, 32, fn=lambda m, x: m(x))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, chips=aligned.chips, keys=np.asarray(keys), embeddings=emb)
    return aligned.chips, keys, emb


def same_people(aux_embeddings: np.ndarray, original: torch.Tensor) -> np.ndarray:
    """Mask of auxiliary faces the recogniser would match to any attacked face."""
    net = models.get("dlib-resnet")
    with torch.no_grad():
        emb = net(original.cpu()).numpy()
    dist = np.linalg.norm(aux_embeddings[:, None, :] - emb[None, :, :], axis=-1)
    return (dist < net.distance_threshold).any(axis=1)


def _loss(y: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    loss = (y - x).abs().mean()
    if kind == "l1+ssim":
        loss = loss + 0.5 * (1 - ssim_torch(y, x).mean())
    return loss


def train_decoder(defence: Defence, defence_params: DefenceParams, aux: np.ndarray,
                  params: DecoderParams, *, seed: int = 0, preview_wire: torch.Tensor | None = None,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None
                  ) -> tuple[WireDecoder, dict[str, Any]]:
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
        return float(_loss(y, y_val, params.loss)), float(ssim_torch(y, y_val).mean())

    best_state, (best_val, best_ssim) = copy.deepcopy(decoder.state_dict()), validate()
    train_loss = float("nan")
    gen = torch.Generator().manual_seed(seed + 2)
    for epoch in range(params.epochs):
        perm = torch.randperm(len(x_train), generator=gen)
        losses = []
        for b in range(0, len(perm), params.batch_size):
            check_cancel(cancel)
            xb = x_train[perm[b:b + params.batch_size]]
            wb = protect(xb, int(torch.randint(2**62, (1,), generator=gen)))
            loss = _loss(decoder(wb), xb.to(dev), params.loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
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
            progress(ProgressEvent(epoch + 1, params.epochs, preview(shown_img), {
                "train_loss": train_loss, "val_loss": val_loss, "val_ssim": val_ssim},
                phase=f"training decoder {epoch + 1}/{params.epochs}"))
    decoder.load_state_dict(best_state)
    decoder.eval()
    info = {"n_train": len(x_train), "n_val": n_val, "epochs": params.epochs,
            "train_loss": train_loss, "val_loss": best_val, "val_ssim": best_ssim,
            "device": str(dev), "train_seconds": time.perf_counter() - start}
    return decoder, info


@register("decoder_inversion")
class DecoderInversion(Attack):
    title = "Learned decoder inversion (trained on auxiliary faces)"
    threat = ThreatModel(
        knows=("wire", "auxiliary_data", "defence_algorithm"),
        sentence="The server protects faces of other people with the defence's public "
                 "algorithm, learns to turn wires back into faces, and decodes what it received.",
    )
    applies_to = frozenset({"features", "embedding", "frequency", "image"})
    Params = DecoderParams
    verdict_phrasing = _rules.RECONSTRUCTION

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        return _rules.reconstruction_rules(case, result)

    def applicable(self, protected: Protected, defence: Defence | None = None) -> str | None:
        reason = super().applicable(protected, defence)
        if reason:
            return reason
        if defence is None:
            return f"{self.title} needs the defence's public algorithm to make training pairs"
        if len(protected.wire_shape) not in (1, 3):
            return (f"{self.title} decodes (C, H, W) maps or vectors, not wires of shape "
                    f"{protected.wire_shape}")
        return None

    def run(self, case: AttackCase, params: Any, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        start = time.perf_counter()
        chips, keys, emb = load_aux(params.aux, params.aux_limit, case.seed, params.use_cache)
        drop = same_people(emb, case.original)
        if (~drop).sum() < 2:
            raise ValueError(f"only {(~drop).sum()} auxiliary faces are not the attacked people")
        n = case.original.shape[0]
        wire = case.protected.wire[:n].float()
        config = {"architecture": ARCHITECTURE, "defence": case.defence.name,
                  "defence_params": case.defence_params.model_dump(mode="json"),
                  "decoder": params.model_dump(mode="json", exclude={"device", "use_cache"}),
                  "seed": case.seed, "excluded": sorted(k for k, d in zip(keys, drop,
                                                                          strict=True) if d)}
        path = cache_dir() / f"decoder-{case.defence.name}-{config_digest(config)}.pt"
        dev = models.resolve_device(params.device)
        if params.use_cache and path.is_file():
            decoder, info = load_cached_decoder(path, params.width, dev)
            info = {**info, "cached": True}
        else:
            decoder, info = train_decoder(case.defence, case.defence_params, chips[~drop],
                                          params, seed=case.seed, preview_wire=wire[:1],
                                          progress=progress, cancel=cancel)
            info["cached"] = False
            if params.use_cache:
                save_decoder(path, decoder, info, config)
        with torch.no_grad():
            recon = torch.cat([decoder(wire[i:i + 64].to(dev)) for i in range(0, n, 64)]).cpu()
        if progress:
            progress(ProgressEvent(params.epochs, params.epochs, preview(recon), {},
                                   phase="decoding the wire"))
        kind = case.protected.wire_kind
        stage = ("embedding" if kind == "embedding" else
                 stage_for(case.protected.wire_shape, getattr(case.defence_params, "stage", None))
                 if kind == "features" else None)
        rows = score_rows(case, recon, stage)
        return AttackResult(
            attack=self.name, threat_model=self.threat, per_image=rows, reconstructions=recon,
            details={**info, "stage": stage, "aux_faces": int((~drop).sum()),
                     "aux_excluded": int(drop.sum()), "checkpoint": str(path),
                     "seconds": time.perf_counter() - start},
        )
