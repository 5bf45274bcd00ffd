"""Helpers shared by the reconstruction attacks (white-box inversion, learned decoder).

Scoring compares a reconstruction with the original chip the way the issue fixes it: SSIM and
PSNR on 8-bit RGB (facepriv_core.metrics), the cosine of dlib-resnet descriptors, and the
relative distance of the two faces' dlib-resnet features at the wire's split stage.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from facepriv_core import metrics, models
from facepriv_core.attacks.base import AttackCase
from facepriv_core.faces import tensor_to_chips


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per-image anisotropic L1 total variation (N,): the smoothness prior of PMT Eq. 4."""
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dx + dy


def preview(x: torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) of the first image of a batch, for ProgressEvent.preview."""
    return tensor_to_chips(x[:1])[0]


def ssim_first(original: torch.Tensor, x: torch.Tensor) -> float:
    """SSIM of image 0 to its original: the cheap running number shown while an attack runs."""
    return metrics.ssim(preview(original), preview(x))


@cache
def stage_shapes() -> dict[str, tuple[int, ...]]:
    """Output shape (C, H, W) of every dlib-resnet stage, and "embedding": (128,)."""
    net = models.get("dlib-resnet")
    with torch.no_grad():
        feats = net.features(torch.zeros(1, 3, net.input_size, net.input_size))
    shapes = {name: tuple(t.shape[1:]) for name, t in feats.items()}
    shapes["embedding"] = (net.embedding_dim,)
    return shapes


def stage_for(wire_shape: tuple[int, ...], hint: str | None = None) -> str | None:
    """The dlib-resnet stage whose output has `wire_shape`: `hint` if it fits, else the first."""
    shapes = stage_shapes()
    if hint in shapes and shapes[hint] == wire_shape:
        return hint
    return next((name for name, shape in shapes.items() if shape == wire_shape), None)


def score_rows(case: AttackCase, recon: torch.Tensor, stage: str | None
               ) -> list[dict[str, float]]:
    """Per-image ssim, psnr, cosine and (with a stage) feature_distance of recon to original.

    feature_distance is ||f(recon) - f(original)|| / ||f(original)|| with f the dlib-resnet
    output at `stage` ("embedding": the descriptor); 0 means the server cannot tell them apart.
    """
    device = recon.device
    net = models.get("dlib-resnet", device)
    original = case.original.to(device)
    eo = case.original_embedding("dlib-resnet").to(device)
    with torch.no_grad():
        er = net(recon)
        if stage is None or stage == "embedding":
            fo, fr = eo, er
        else:
            fo = net.features(original, upto=stage)[stage]
            fr = net.features(recon, upto=stage)[stage]
        cos = metrics.cosine(er, eo).cpu().tolist()
        dist = ((fr - fo).flatten(1).norm(dim=1) / fo.flatten(1).norm(dim=1).clamp_min(1e-8))
    images = metrics.batch_image_metrics(tensor_to_chips(original), tensor_to_chips(recon))
    rows = []
    for i in range(len(recon)):
        row = {"ssim": images["ssim"][i], "psnr": images["psnr"][i], "cosine": cos[i]}
        if stage is not None:
            row["feature_distance"] = float(dist[i])
        rows.append(row)
    return rows
