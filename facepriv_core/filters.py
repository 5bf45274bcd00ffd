"""The one Gaussian kernel and separable blur, shared by the blur defence, PMT's TI kernel and
the Cydral re-chipping (a leaf: torch only)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(size: int, sigma: float, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """(size,) float32 Gaussian of standard deviation `sigma` centred on the middle tap,
    normalised to sum 1."""
    r = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-(r**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_kernel_3sigma(sigma: float) -> torch.Tensor:
    """The Gaussian truncated at ceil(3 sigma) (at least one tap) on each side."""
    radius = max(1, math.ceil(3 * sigma))
    return gaussian_kernel1d(2 * radius + 1, sigma)


def separable_blur(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect"
                   ) -> torch.Tensor:
    """NCHW `x` filtered by the odd 1-D `kernel` along W then H, borders padded with `mode`
    ('reflect', 'replicate', ...), so the output has the input's size."""
    c, size = x.shape[1], kernel.numel()
    r = size // 2
    kernel = kernel.to(x)
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)
