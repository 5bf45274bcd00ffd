"""PPFR-FD's client-side transform: block DCT, channel selection and the paper's fast masking.

The maths the defence runs on the client and the service undoes with its key (see
facepriv_core.defences.ppfr_fd for the choices where the paper leaves room). Kept apart from
the defence plugin so the service module (defences/ppfr_fd_service.py) and the trainer can use
it without importing the plugin.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core.defences.base import DefenceParams
from facepriv_core.defences.keys import KeySource

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

