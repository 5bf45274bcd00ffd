"""Image and identity metrics. SSIM and PSNR are scikit-image's, on 8-bit RGB."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 (H, W, 3) images (scikit-image, Gaussian-free 7x7 window)."""
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def ssim_torch(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Differentiable per-image SSIM (N,) of [0, 1] NCHW batches, uniform window like skimage.

    Used as a training loss; reported SSIM always comes from `ssim` on uint8.
    """
    c1, c2 = 0.01**2, 0.03**2

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    mu_a, mu_b = pool(a), pool(b)
    var_a = pool(a * a) - mu_a**2
    var_b = pool(b * b) - mu_b**2
    cov = pool(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return (num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean(dim=(1, 2, 3))


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


def srra(cosines: np.ndarray, kappa: float) -> float:
    """Successful reconstruction rate (PMT, Pu et al. 2023): the share of reconstructions whose
    cosine to the original's embedding exceeds `kappa`, i.e. that a recogniser would accept."""
    c = np.asarray(cosines, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("srra needs at least one cosine")
    return float(np.mean(c > kappa))


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """float64 rows scaled to unit length (zero rows stay zero): cosine by dot product."""
    e = np.array(emb, dtype=np.float64)  # a copy, scaled in place, 4096 rows at a time:
    for start in range(0, len(e), 4096):  # one (N, D) array at peak, not three
        rows = e[start:start + 4096]
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return e


def rank1_hits(probe_emb: np.ndarray, gallery_emb: np.ndarray, probe_ids: np.ndarray,
               gallery_ids: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Per probe, 1.0 when its cosine-nearest gallery entry is the same person, else 0.0.

    `exclude` (P, G) bool marks gallery entries a probe may not match (e.g. its own source
    photo); a probe with nothing left to match scores NaN.
    """
    sims = unit_rows(probe_emb) @ unit_rows(gallery_emb).T
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    best = np.argmax(sims, axis=1)
    hits = (np.asarray(gallery_ids)[best] == np.asarray(probe_ids)).astype(np.float64)
    return np.where(np.isneginf(sims.max(axis=1)), np.nan, hits)


def rank1(probe_emb: np.ndarray, gallery_emb: np.ndarray, probe_ids: np.ndarray,
          gallery_ids: np.ndarray) -> float:
    """Rank-1 identification rate of probes against a labelled gallery (cosine nearest)."""
    return float(np.mean(rank1_hits(probe_emb, gallery_emb, probe_ids, gallery_ids)))


def attr_cossim(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise cosine between attribute probability vectors of protected and original faces
    (PMT Eq. 11): 1 when the attribute model sees the same thing in both."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    num = np.sum(p * q, axis=1)
    return num / np.maximum(np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1), 1e-12)


def _argmax_rows(p: np.ndarray) -> np.ndarray:
    return np.argmax(np.atleast_2d(np.asarray(p)), axis=1)


def gender_flip_rate(p_orig: np.ndarray, p_prot: np.ndarray) -> float:
    """Share of faces whose predicted gender (argmax of (N, 2) probabilities) changed."""
    return float(np.mean(_argmax_rows(p_orig) != _argmax_rows(p_prot)))


def age_abs_error(age_orig: np.ndarray, age_prot: np.ndarray) -> float:
    """Mean absolute difference in estimated years between original and protected faces."""
    a = np.asarray(age_orig, dtype=np.float64)
    b = np.asarray(age_prot, dtype=np.float64)
    return float(np.mean(np.abs(a - b)))


def emotion_agreement(p_orig: np.ndarray, p_prot: np.ndarray) -> float:
    """Share of faces whose top emotion is the same on the original and the protected face."""
    return float(np.mean(_argmax_rows(p_orig) == _argmax_rows(p_prot)))


def up_score(sigma: float, kappa: float) -> float:
    """Utility-privacy score in [0, 1]: 1 - (distance of (sigma, kappa) to the ideal (1, 1)).

    sigma: utility, the authorised recogniser's accuracy on protected data, in [0, 1].
    kappa: privacy, the share of attacks that fail (e.g. 1 - srra), in [0, 1].
    The distance term is the Euclidean distance to (1, 1) divided by sqrt(2), so the score is
    1 for full utility with full privacy and 0 for neither. This follows the idea of PMT's
    Eq. 9 (Pu et al., "Facial Data Minimization: Shallow Model as Your Privacy Filter",
    arXiv:2310.15590), whose exact form was not available here: this definition is ours.
    """
    for name, v in (("sigma", sigma), ("kappa", kappa)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    return float(1.0 - np.hypot(1.0 - sigma, 1.0 - kappa) / np.sqrt(2.0))
