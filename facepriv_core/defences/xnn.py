"""XNN: shallow features sent through a secret channel permutation and a secret invertible mix.

The client computes dlib-resnet up to `stage` (features F, C x H x W) and sends M P F: P a secret
channel permutation, M a secret random C x C matrix with condition number <= cond_max, applied
at every spatial position (a 1x1 convolution). XNN (Liu et al.) introduces this "random
permutation + matrix multiplication" obfuscation of feature maps for cloud training; here it
protects split inference.

A keyed server absorbs (M P)^-1 into its first layer, so its output is exactly the clean
embedding with no retraining. dlib's server part begins with a residual block whose input feeds
both the first convolution and the skip: (M P)^-1 is folded into the first convolution's
weights (a convolution is linear across input channels, and its zero padding maps to zero
under any matrix), and the skip, which needs the features themselves, applies it as a 1x1
convolution. When the split leaves only the head (stage "level0.0"), the inverse is folded
into the head's linear layer. Note that whoever runs the keyed server holds the inverse and
could recover F; the defence is against a server that only sees the wire (the keyless server:
the plain server part applied to the wire, reported as `metrics["keyless_cosine"]`).
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from facepriv_core import models
from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    DefenceParams,
    LazyMetrics,
    Paper,
    Progress,
    Protected,
    SecretKey,
    tile_channels,
)
from facepriv_core.defences.keys import KeySource
from facepriv_core.models.dlib_resnet import DEFAULT_SPLIT, _Head, _Residual, add_zero_padded


class XnnParams(DefenceParams):
    stage: str = Field(DEFAULT_SPLIT, description="the dlib-resnet stage after which the client "
                                                  "stops and transforms the features")
    cond_max: float = Field(10.0, ge=1.0, le=1e6,
                            description="condition number of the secret matrix M (its singular "
                                        "values are log-uniform in [cond^-1/2, cond^1/2])")


def random_orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian, signs fixed), float64 CPU."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, device=gen.device,
                                       dtype=torch.float64).cpu())
    return q * torch.sign(torch.diagonal(r))


def draw_key(channels: int, cond_max: float, gen: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(perm, M): M = U diag(s) V^T, so its conditioning is set by construction, not luck."""
    perm = torch.randperm(channels, generator=gen, device=gen.device).cpu()
    u = random_orthogonal(channels, gen)
    v = random_orthogonal(channels, gen)
    half = 0.5 * torch.log(torch.tensor(cond_max, dtype=torch.float64))
    logs = torch.rand(channels, generator=gen, device=gen.device, dtype=torch.float64).cpu()
    logs = (2 * logs - 1) * half
    logs[0], logs[-1] = half, -half  # the extremes pin cond(M) to cond_max exactly
    return perm, (u * torch.exp(logs)) @ v.T


def transform(feats: torch.Tensor, perm: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """M P F at every pixel: channel k of P F is channel perm[k] of F."""
    permuted = feats[:, perm.to(feats.device)]
    return torch.einsum("ij,njhw->nihw", m.to(feats), permuted)


def inverse_transform(perm: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(M P)^-1 as a C x C float64 matrix; (M P)[:, c] = M[:, k] where perm[k] = c."""
    return torch.linalg.inv(m[:, torch.argsort(perm)])


class _KeyedResidual(nn.Module):
    """A residual block taking M P F: conv_a's weights absorb (M P)^-1, the skip applies it."""

    def __init__(self, block: _Residual, inv: torch.Tensor) -> None:
        super().__init__()
        c = inv.shape[0]
        self.conv_a = copy.deepcopy(block.conv_a)
        self.conv_b = block.conv_b
        self.skip = nn.Conv2d(c, c, 1, bias=False)
        self.down = block.down
        with torch.no_grad():
            w = block.conv_a.weight.double()
            self.conv_a.weight.copy_(torch.einsum("ocyx,ci->oiyx", w, inv.to(w)))
            self.skip.weight.copy_(inv[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_b(F.relu(self.conv_a(x)))
        shortcut = self.skip(x)
        if self.down:
            shortcut = F.avg_pool2d(shortcut, 2, 2)
        return F.relu(add_zero_padded(shortcut, y))


def keyed_server(server: nn.Sequential, inv: torch.Tensor) -> nn.Sequential:
    """The server part with (M P)^-1 folded into its first layer; `server` is left untouched."""
    first, rest = server[0], list(server)[1:]
    inv = inv.to(next(first.parameters()).device)
    if isinstance(first, _Residual):
        return nn.Sequential(_KeyedResidual(first, inv), *rest)
    if isinstance(first, _Head):
        head = copy.deepcopy(first)
        with torch.no_grad():
            head.fc.weight.copy_(first.fc.weight.double() @ inv)
        return nn.Sequential(head, *rest)
    raise TypeError(f"cannot fold the key into a {type(first).__name__}")


@register("xnn")
class Xnn(Defence[XnnParams]):
    title = "XNN (secret channel permutation and mixing of shallow features)"
    paper = Paper(
        title="XNN: Paradigm Shift in Mitigating Identity Leakage within Cloud-Enabled Deep "
              "Learning",
        authors="Liu, Xiong, Duan, Cheng, Zhou, Zhang, Zhang",
        venue="arXiv:2408.04974, 2024",
    )
    wire_kind = "features"
    Params = XnnParams
    keyed = True

    def protect(self, x: torch.Tensor, params: XnnParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None, key: KeySource | None = None) -> Protected:
        """The client's key (P, M) comes from `key` (a fresh secret source when None): one
        fixed key per source, whatever the batch; `rng` is not used."""
        shallow, server = models.get("dlib-resnet", self.device).split(params.stage)
        with torch.no_grad():
            feats = shallow(x.to(self.device))
            source = key if key is not None else KeySource.secret()
            perm, m = draw_key(feats.shape[1], params.cond_max, source.generator("xnn"))
            wire = transform(feats, perm, m)

        @functools.cache
        def authorised() -> torch.Tensor:
            """What the keyed service computes from the wire (run once, when first asked)."""
            with torch.no_grad():
                return keyed_server(server, inverse_transform(perm, m))(wire)

        def diagnostics() -> dict[str, float]:
            with torch.no_grad():
                clean, keyless = server(feats), server(wire)
            return {
                "keyed_cosine": float(F.cosine_similarity(authorised(), clean, dim=1).mean()),
                "keyless_cosine": float(F.cosine_similarity(keyless, clean, dim=1).mean()),
                "key_cond": float(torch.linalg.cond(m)),
            }

        return Protected(wire=wire, wire_kind="features", preview=tile_channels(wire),
                         utility=lambda rec: authorised(),
                         key=SecretKey(perm=perm, M=m, reproducible=source.reproducible),
                         metrics=LazyMetrics(diagnostics))
