"""Image and identity metrics. SSIM and PSNR are scikit-image's, on 8-bit RGB."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 (H, W, 3) images (scikit-image, Gaussian-free 7x7 window)."""
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images; identical images give +inf."""
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def batch_image_metrics(originals: np.ndarray, others: np.ndarray) -> dict[str, list[float]]:
    """Per-image SSIM and PSNR of two uint8 NHWC batches of the same shape."""
    return {
        "ssim": [ssim(a, b) for a, b in zip(originals, others, strict=True)],
        "psnr": [psnr(a, b) for a, b in zip(originals, others, strict=True)],
    }


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two (N, D) embedding batches."""
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1)
