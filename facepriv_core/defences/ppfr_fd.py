"""PPFR-FD: privacy-preserving face recognition in the frequency domain (Wang et al., AAAI 2022).

The client turns the face into block-DCT component channels, keeps a fixed subset of them
without the DC channel (most of the image energy, hence of what a viewer sees, goes), and
masks the rest with the paper's "fast masking": Shuffle1 (a secret channel permutation),
self-normalisation, channel mixing (E_j + E_{j+1}) / 2, Shuffle2 (random per image) and
self-normalisation again. The server receives the 34 x 14 x 14 masked tensor.

Choices where the paper leaves room, and why:

* Geometry: the paper feeds 112 x 112 ArcFace-template faces. The defence's input is the
  dlib 150 chip (padding 0.25, a looser crop), which is resized as a whole to 112 x 112 with
  antialiasing, so the wire covers exactly what dlib-resnet sees and the frozen dlib server
  part can serve as the recogniser behind the adapter.
* Greyscale: ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) on the [0, 1] pixel scale.
* Self-normalisation: the paper normalises each element with a mean and standard deviation
  taken over the channels of the same image. Read literally (element-wise statistics), each
  spatial position (i, j) is standardised across the channel axis: for every (i, j),
  E'_c(i, j) = (E_c(i, j) - mean_c E_c(i, j)) / std_c E_c(i, j) (population std). These
  statistics do not depend on the channel order, so normalisation commutes with both
  shuffles, and it removes the per-block contrast that would otherwise survive as an image.
* Channel index u * 8 + v (u: vertical, v: horizontal frequency, row-major); the default
  subset is the 36 lowest channels in JPEG zig-zag order (exactly u + v <= 7).

Utility: the paper's server widens ArcFace's input layer and trains it on masked tensors. Here
the service (facepriv_core.train.ppfr_fd_service, its docstring says why) puts each image's
channels back in order with per-slot templates, rebuilds the masked high-pass face with a
fixed inverse-DCT layer and embeds it with a fine-tuned dlib-resnet. It is trained once per wire
configuration (`facepriv train ppfr_fd`, or on first use by `verify --defence`) and cached;
until then a seeded, untrained adapter stands in and every output says UNTRAINED
(`utility_model`, metrics["adapter_trained"]).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    DefenceParams,
    Paper,
    Progress,
    Protected,
    ProtectionCancelled,
    SecretKey,
    tile_channels,
)
from facepriv_core.defences.keys import KeySource

PPFR_FD = Paper(
    title="Privacy-Preserving Face Recognition in the Frequency Domain",
    authors="Wang, Liu, Luo, Yang, Wang",
    venue="AAAI 2022",
)

LUMA_601 = (0.299, 0.587, 0.114)
FACE_SIZE = 112
BLOCK = 8
#: Added to the per-position standard deviation (pixel scale [0, 1]) so flat blocks stay finite.
NORM_EPS = 1e-4

Selection = Literal["zigzag_lowest", "zigzag_spread"]


class PPFRParams(DefenceParams):
    channels: int = Field(36, ge=4, le=64,
                          description="number of DCT component channels kept before the DC "
                                      "channel is dropped (the paper keeps 36 of 64)")
    selection: Selection = Field("zigzag_lowest",
                                 description="which channels: 'zigzag_lowest' = the first ones "
                                             "in JPEG zig-zag order (low to fairly high "
                                             "frequencies); 'zigzag_spread' = evenly spaced "
                                             "ranks over the whole zig-zag order")
    drop_dc: bool = Field(True, description="drop the DC channel (the block means), which "
                                            "holds most of the image energy")
    mix: bool = Field(True, description="channel mixing (E_j + E_{j+1}) / 2 after Shuffle1, "
                                        "one channel fewer")
    adapter_path: str | None = Field(None,
                                     description="checkpoint of a trained PPFR-FD adapter "
                                                 "(facepriv train ppfr_fd); "
                                                 "None uses an untrained, seeded adapter")


def to_grey112(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, 112, 112) BT.601 luma, antialiased resize."""
    w = torch.tensor(LUMA_601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = (x * w).sum(dim=1, keepdim=True)
    return F.interpolate(grey, size=(FACE_SIZE, FACE_SIZE), mode="bilinear",
                         align_corners=False, antialias=True)


def dct_matrix(n: int = BLOCK, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n, n): coefficients of a block X are D X D^T."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(torch.pi * (2 * i + 1) * k / (2 * n)) * (2.0 / n) ** 0.5
    d[0] /= 2**0.5
    return d.to(device=device, dtype=dtype)


def block_dct(grey: torch.Tensor, n: int = BLOCK) -> torch.Tensor:
    """(N, 1, H, W) -> (N, n*n, H/n, W/n): channel u*n+v holds coefficient (u, v) of each block."""
    b, _, h, w = grey.shape
    d = dct_matrix(n, grey.device, grey.dtype)
    blocks = grey.reshape(b, h // n, n, w // n, n)  # batch, block row, y, block col, x
    coef = torch.einsum("uy,nbyax,vx->nuvba", d, blocks, d)
    return coef.reshape(b, n * n, h // n, w // n)


def block_idct(coef: torch.Tensor, n: int = BLOCK) -> torch.Tensor:
    """Inverse of block_dct: (N, n*n, bh, bw) -> (N, 1, bh*n, bw*n)."""
    b, _, bh, bw = coef.shape
    d = dct_matrix(n, coef.device, coef.dtype)
    img = torch.einsum("uy,nuvba,vx->nbyax", d, coef.reshape(b, n, n, bh, bw), d)
    return img.reshape(b, 1, bh * n, bw * n)


def zigzag_order(n: int = BLOCK) -> list[int]:
    """Channel indices u*n+v in JPEG zig-zag order (DC first, then rising u+v)."""
    order = []
    for s in range(2 * n - 1):
        rows = range(max(0, s - n + 1), min(s, n - 1) + 1)
        # odd diagonals run down-left (row rising), even ones up-right (row falling)
        for u in (rows if s % 2 else reversed(rows)):
            order.append(u * n + (s - u))
    return order


def selected_channels(params: PPFRParams) -> list[int]:
    """The kept component channels in zig-zag order, without DC when it is dropped."""
    zz = zigzag_order()
    if params.selection == "zigzag_lowest":
        ranks = list(range(params.channels))
    else:
        ranks = torch.linspace(0, len(zz) - 1, params.channels).round().long().tolist()
    kept = [zz[r] for r in ranks]
    return [c for c in kept if c != 0] if params.drop_dc else kept


def shuffle1_permutation(source: KeySource, c: int) -> torch.Tensor:
    """The secret, fixed channel permutation of the client's key source (CPU, long)."""
    return torch.randperm(c, generator=source.generator("ppfr_fd shuffle1"))


def shuffle2_permutations(n: int, c: int, rng: torch.Generator) -> torch.Tensor:
    """One uniformly random permutation of c channels per image, (n, c) long on rng's device."""
    return torch.rand(n, c, generator=rng, device=rng.device).argsort(dim=1)


def self_normalise(t: torch.Tensor) -> torch.Tensor:
    """Standardise every spatial position across the channel axis of its own image."""
    mean = t.mean(dim=1, keepdim=True)
    std = t.std(dim=1, keepdim=True, correction=0)
    return (t - mean) / (std + NORM_EPS)


def mix_channels(t: torch.Tensor) -> torch.Tensor:
    """(E_j + E_{j+1}) / 2 for consecutive channels: C -> C - 1."""
    return (t[:, :-1] + t[:, 1:]) / 2


def permute_channels(t: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """t[i] reordered by perms[i] along the channel axis ((N, C) perms, or one shared (C,))."""
    if perms.ndim == 1:
        return t[:, perms.to(t.device)]
    rows = torch.arange(t.shape[0], device=t.device).unsqueeze(1)
    return t[rows, perms.to(t.device)]


def wire_channels(params: PPFRParams) -> int:
    """Channels of the wire: kept non-DC channels, one fewer when mixing."""
    return len(selected_channels(params)) - int(params.mix)


def mask_coefficients(coef: torch.Tensor, params: PPFRParams, shuffle1: torch.Tensor,
                      shuffle2: torch.Tensor) -> torch.Tensor:
    """The fast masking on block-DCT coefficients (N, 64, 14, 14) -> the wire (differentiable)."""
    t = coef[:, selected_channels(params)]
    t = self_normalise(permute_channels(t, shuffle1))
    if params.mix:
        t = mix_channels(t)
    return self_normalise(permute_channels(t, shuffle2))


def energy_dropped(coef: torch.Tensor, kept: list[int]) -> torch.Tensor:
    """Per image: the share of DCT energy (DC included) outside the `kept` channels."""
    total = coef.pow(2).sum(dim=(1, 2, 3))
    return 1 - coef[:, kept].pow(2).sum(dim=(1, 2, 3)) / total.clamp_min(1e-12)


@dataclass(repr=False)
class FrequencyProtected(Protected):
    """A Protected that also names the recogniser behind `utility` (text for reports)."""

    utility_model: str = ""


@functools.lru_cache(maxsize=2)
def _cached_service(path: str, mtime_ns: int, params: PPFRParams, device: str) -> Any:
    from facepriv_core.train.ppfr_fd_service import load_service

    return load_service(path, params, device)


@functools.lru_cache(maxsize=4)
def _cached_untrained(channels: int, device: str) -> tuple[torch.nn.Module, dict]:
    """The seeded untrained adapter: deterministic, so it is built once, not per call."""
    from facepriv_core.train.ppfr_fd_adapter import untrained_adapter

    return untrained_adapter(channels, device)


def service_checkpoint(params: PPFRParams) -> Path | None:
    """The trained service to use: `adapter_path` when given (it must exist), else the one
    cached for this wire configuration, else None (not trained yet)."""
    from facepriv_core.train.ppfr_fd_service import cache_path

    if params.adapter_path is not None:
        from facepriv_core.checkpoints import regular_file

        return regular_file(params.adapter_path, "PPFR-FD service checkpoint")
    cached = cache_path(params)
    return cached if cached.is_file() else None


def service_trained(params: PPFRParams) -> bool:
    """Whether the authorised service for these params is trained (cached or given)."""
    return service_checkpoint(params) is not None


def utility_service(params: PPFRParams, device: torch.device
                    ) -> tuple[Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
                               dict[str, Any]]:
    """(embed(wire, shuffle1, recogniser), info) of the service: the trained one when there
    is one, else the seeded untrained adapter in front of the frozen dlib server part."""
    path = service_checkpoint(params)
    if path is not None:
        service = _cached_service(str(path.resolve()), path.stat().st_mtime_ns, params,
                                  str(device))
        return (lambda wire, shuffle1, _rec: service.embed(wire, shuffle1)), service.info
    adapter, info = _cached_untrained(wire_channels(params), str(device))

    def untrained(wire: torch.Tensor, _shuffle1: torch.Tensor, rec: Any) -> torch.Tensor:
        return rec.split(info["stage"])[1](adapter(wire))

    return untrained, info


def describe_service(info: dict[str, Any]) -> str:
    if not info["trained"]:
        return ("UNTRAINED PPFR-FD service (seeded adapter, 0 training images, frozen dlib-resnet"
                f" after {info['stage']}): its utility means nothing; train it with "
                "`facepriv train ppfr_fd`")
    return (f"PPFR-FD service: slot assignment + inverse DCT + dlib-resnet fine-tuned on "
            f"{info['train_images']} faces ({info['data']}) for {info['steps']} steps "
            f"(held-out top-1 {info['val_top1']:.2f})")


@register("ppfr_fd")
class PPFRFD(Defence[PPFRParams]):
    title = "PPFR-FD: block-DCT channels with fast masking"
    paper = PPFR_FD
    wire_kind = "frequency"
    Params = PPFRParams
    keyed = True
    capabilities = frozenset({"simulate", "frequency_masking"})

    def key_for(self, params: PPFRParams, source: KeySource) -> SecretKey:
        """The client's key: the Shuffle1 permutation its key source fixes (never the seed)."""
        perm = shuffle1_permutation(source, len(selected_channels(params)))
        return SecretKey(shuffle1=perm, reproducible=source.reproducible)

    def service_ready(self, params: PPFRParams) -> bool:
        return service_trained(params)

    def service_seen(self, params: PPFRParams) -> dict[str, list[int]]:
        if not service_trained(params):
            return {}
        _, info = utility_service(params, self.device)
        return dict(info.get("trained_people", {}))

    def prepare_service(self, params: PPFRParams, progress: Progress | None = None,
                        cancel: Cancel | None = None) -> None:
        """Train the service for this wire configuration on first use (this machine's SFHQ,
        minutes on CPU; GPU when present), cached for every later run and key."""
        if service_trained(params):
            return
        from facepriv_core.train.ppfr_fd_service import train_service

        ckpt = train_service(params=params, device=self.device, cancel=cancel,
                             progress=(lambda s, t, _loss: progress(s, t)) if progress else None)
        if ckpt["cancelled"]:
            raise ProtectionCancelled("PPFR-FD service training cancelled")

    def protect(self, x: torch.Tensor, params: PPFRParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None, key: KeySource | None = None
                ) -> FrequencyProtected:
        """Shuffle1 comes from `key` (a fresh secret source when None); Shuffle2, drawn per
        image and discarded, from `rng`."""
        x = x.to(self.device)
        secret = self.key_for(params, key if key is not None else KeySource.secret())
        coef = block_dct(to_grey112(x))
        shuffle2 = shuffle2_permutations(x.shape[0], wire_channels(params), rng)
        wire = mask_coefficients(coef, params, secret["shuffle1"], shuffle2).detach()
        nondc = [c for c in selected_channels(params) if c != 0]
        embed, info = utility_service(params, self.device)

        def utility(recognizer: Any) -> torch.Tensor:
            if not hasattr(recognizer, "split"):
                raise TypeError("PPFR-FD's service is built on dlib-resnet; got "
                                f"{type(recognizer).__name__}")
            return embed(wire, secret["shuffle1"], recognizer)

        metrics = {
            "energy_dropped": float(energy_dropped(coef, nondc).mean()),
            "adapter_trained": float(info["trained"]),
            "adapter_train_images": float(info["train_images"]),
        }
        if progress:
            progress(1, 1)
        return FrequencyProtected(wire=wire, wire_kind="frequency", preview=tile_channels(wire),
                                  utility=utility, key=secret, metrics=metrics,
                                  utility_model=describe_service(info))
