"""PMT and MR-PMT: a noise-like image whose shallow features match the face's (Pu et al.).

PMT (Algorithm 1) starts the obfuscated image x~ from noise (or a substitute image, or a blur
of the original: Table III) and descends ||E_c(x~) - E_c(x)||^2, where E_c is the shallow
part of the authorised recogniser (here dlib-resnet up to `stage`). Everything deeper in the
authorised model only sees E_c's output, so it still recognises x~, while the pixels stay
far from the face. Two uploads (Section 3): "image" sends x~ (8-bit), "features" sends
E_c(x~) and the server runs the rest of the network.

The enhanced perturbation (Algorithm 2) adds, each switchable: augmentation before every step
(Gaussian noise on x~, and/or a random small shift + rotation applied to both x~ and x, so the
match survives the service's preprocessing), layer aggregation (the matched feature is every
shallow layer's output, average-pooled to the last one's size and concatenated), and
translation-invariant gradients (the L1-normalised gradient convolved with a linear or
Gaussian kernel, Section 5.3, as in Dong et al.'s TI attacks).

MR-PMT (Eq. 8) sums the feature distances of several authorised models. Each term is divided by
its clean feature energy (a relative distance), so a model with larger activations does not
drown the others; with one model this only rescales the loss, which Adam and sign steps ignore.

Steps: Adam (default; converges in far fewer steps than the paper's plain descent, which the
demo budget needs) or sign steps x~ <- x~ - alpha sign(g) (the FGSM-style update the TI
gradients were made for). x~ is kept in [0, 1] after every step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core import models
from facepriv_core.cancel import check_cancel
from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    DefenceParams,
    LazyMetrics,
    Paper,
    Progress,
    Protected,
    ProtectionCancelled,
    image_preview,
    report_progress,
    tile_channels,
)
from facepriv_core.defences.baselines import gaussian_blur, quantise
from facepriv_core.filters import gaussian_kernel1d
from facepriv_core.models.dlib_resnet import DEFAULT_SPLIT

PMT_PAPER = Paper(
    title="Facial Data Minimization: Shallow Model as Your Privacy Filter",
    authors="Pu, Chen, Pan, Yan, Zhang, Ji",
    venue="IEEE TDSC 2025 (arXiv:2310.15590)",
)

Layers = Callable[[torch.Tensor], list[torch.Tensor]]


class PmtParams(DefenceParams):
    """Defaults are the demo preset (< 3 s per face on CPU at batch 16); see Pmt.paper_params."""

    upload: Literal["image", "features"] = Field(
        "image", description="what the server receives: the obfuscated image, or its shallow "
                             "features (the server runs the rest of dlib-resnet)")
    stage: str = Field(DEFAULT_SPLIT, description="last dlib-resnet stage of the shallow model "
                                                  "E_c whose features are matched")
    steps: int = Field(80, ge=1, le=5000, description="optimisation steps K")
    lr: float = Field(0.08, gt=0.0, le=1.0, description="step size alpha (Adam learning rate, "
                                                        "or the sign-step size in [0, 1] units)")
    optimiser: Literal["adam", "sign"] = Field("adam", description="Adam, or sign steps")
    init: Literal["gaussian", "substitution", "blur"] = Field(
        "gaussian", description="start of x~ (Table III): Gaussian noise, another face of the "
                                "batch (smooth noise for a single face), or a blur of the face")
    init_sigma: float = Field(0.25, ge=0.0, le=1.0,
                              description="std of the Gaussian start around grey 0.5")
    blur_sigma: float = Field(6.0, gt=0.0, le=30.0, description="blur start: std in pixels")
    augment: Literal["none", "noise", "affine", "both"] = Field(
        "none", description="augmentation of x~ before each step (Algorithm 2)")
    aug_noise: float = Field(0.03, ge=0.0, le=0.5, description="std of the noise augmentation")
    aug_shift: float = Field(0.03, ge=0.0, le=0.2,
                             description="largest random shift, as a fraction of the width")
    aug_rotate: float = Field(5.0, ge=0.0, le=45.0, description="largest random rotation (deg)")
    aggregate: bool = Field(False, description="match every shallow layer's pooled output, "
                                               "concatenated (layer aggregation)")
    ti_kernel: Literal["none", "linear", "gaussian"] = Field(
        "none", description="translation-invariant gradient smoothing kernel (Section 5.3)")
    ti_size: int = Field(5, ge=3, le=31, description="side of the TI kernel (odd)")


class MrPmtParams(PmtParams):
    models: tuple[str, ...] = Field(
        ("dlib-resnet",), min_length=1,
        description="authorised recognisers (differentiable); the wire's model is the first")


def _relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b|| / ||b|| per sample (N,)."""
    return (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-12)


def ti_kernel(kind: str, size: int) -> torch.Tensor:
    """(size, size) kernel summing to 1: a linear (triangle) or Gaussian profile, as in TI.

    The Gaussian's std is radius / sqrt(3), the choice of Dong et al.'s TI implementation."""
    r = size // 2
    if kind == "linear":
        p = 1 - torch.arange(-r, r + 1, dtype=torch.float32).abs() / (r + 1)
    else:
        p = gaussian_kernel1d(size, r / math.sqrt(3), torch.device("cpu"))
    k = torch.outer(p, p)
    return k / k.sum()


def _rand(gen: torch.Generator, *shape: int, device: torch.device,
          normal: bool = False) -> torch.Tensor:
    """Random numbers drawn from the run's generator (on its device), moved to `device`."""
    draw = torch.randn if normal else torch.rand
    return draw(*shape, generator=gen, device=gen.device).to(device)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def _random_theta(n: int, p: PmtParams, gen: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices of a rotation within +-aug_rotate and a shift within
    +-aug_shift of the width (affine_grid's coordinates span 2 per width)."""
    u = 2 * _rand(gen, n, 3, device=device) - 1
    a = u[:, 0] * math.radians(p.aug_rotate)
    shift = u[:, 1:] * 2 * p.aug_shift
    cos, sin = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                        torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def _initial(x: torch.Tensor, p: PmtParams, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    if p.init == "gaussian":
        z = 0.5 + p.init_sigma * _rand(gen, *x.shape, device=x.device, normal=True)
    elif p.init == "blur":
        z = gaussian_blur(x, 2 * math.ceil(3 * p.blur_sigma) + 1, p.blur_sigma)
    elif n > 1:  # substitution by another face of the batch: a random cyclic shift
        offset = int(torch.randint(1, n, (1,), generator=gen, device=gen.device))
        z = x.roll(offset, dims=0)
    else:  # one face: smooth, face-sized blobs of colour stand in for another image
        coarse = _rand(gen, n, 3, 8, 8, device=x.device)
        z = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return z.clamp(0, 1)


def dlib_layers(net: Any, stage: str, aggregate: bool) -> Layers:
    """dlib-resnet's shallow features: the stage output, or every stage's output up to it
    average-pooled to its size (layer aggregation)."""
    def layers(x: torch.Tensor) -> list[torch.Tensor]:
        feats = net.features(x, upto=stage)
        last = feats[stage]
        if not aggregate:
            return [last]
        return [F.adaptive_avg_pool2d(f, last.shape[-2:]) for f in feats.values()]
    return layers


def extractor(name: str, stage: str, aggregate: bool, device: torch.device) -> Layers:
    """The features of one authorised model that PMT matches. dlib-resnet: its shallow part
    up to `stage`. Another model: its own default `.split` client part when it has one, else its
    whole network's output (the embedding). Non-differentiable models are refused."""
    if not models.entry(name).differentiable:
        raise ValueError(f"MR-PMT needs gradients, but the model {name!r} is not differentiable "
                         "(black-box); choose differentiable recognisers")
    net = models.get(name, device)
    if name == "dlib-resnet":
        return dlib_layers(net, stage, aggregate)
    client = net.split()[0] if hasattr(net, "split") else net
    return lambda x: [client(x)]


def _model_cosine(name: str, a: torch.Tensor, b: torch.Tensor, device: torch.device) -> float:
    """Mean cosine between recogniser `name`'s embeddings of a and b (MR-PMT's other models)."""
    net = models.get(name, device)
    return float(F.cosine_similarity(net.embed(a), net.embed(b), dim=1).mean())


def _first_preview(z: torch.Tensor) -> np.ndarray:
    """The first face of the batch being optimised, for the live preview."""
    return image_preview(z[:1].detach())[0]


@torch.enable_grad()  # callers may protect under no_grad (benches, the app's previews)
def obfuscate(x: torch.Tensor, start: torch.Tensor, extractors: list[Layers], p: PmtParams,
              gen: torch.Generator, progress: Progress | None = None,
              cancel: Cancel | None = None) -> torch.Tensor:
    """Algorithms 1 and 2: x~, from `start`, whose features under every extractor match x's
    (Eq. 8)."""
    affine = p.augment in ("affine", "both")
    noise = p.augment in ("noise", "both")
    with torch.no_grad():
        fixed = [e(x) for e in extractors]
    kernel = None
    if p.ti_kernel != "none":
        size = p.ti_size | 1
        kernel = ti_kernel(p.ti_kernel, size).to(x).expand(3, 1, size, size)
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=p.lr) if p.optimiser == "adam" else None
    for k in range(p.steps):
        check_cancel(cancel, ProtectionCancelled, f"PMT cancelled at step {k} of {p.steps}")
        inp, targets = z, fixed
        if affine:
            theta = _random_theta(len(x), p, gen, x.device)
            inp = _affine(z, theta)
            with torch.no_grad():
                targets = [e(_affine(x, theta)) for e in extractors]
        if noise:
            inp = inp + p.aug_noise * _rand(gen, *x.shape, device=x.device, normal=True)
        loss = z.new_zeros(())
        for e, target in zip(extractors, targets, strict=True):
            for f, t in zip(e(inp), target, strict=True):
                loss = loss + (_relative(f, t) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, z)
        if kernel is not None:
            grad = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            grad = F.conv2d(grad, kernel, padding=kernel.shape[-1] // 2, groups=3)
        with torch.no_grad():
            if opt is None:
                z -= p.lr * grad.sign()
            else:
                z.grad = grad
                opt.step()
            z.clamp_(0, 1)
        report_progress(progress, k + 1, p.steps, f"optimising {k + 1}/{p.steps}",
                        functools.partial(_first_preview, z))
    return z.detach()


@register("pmt")
class Pmt(Defence[PmtParams]):
    title = "PMT (noise-like image matching the shallow features of the authorised model)"
    paper = PMT_PAPER
    wire_kind = "image"
    Params = PmtParams
    optimising = True
    PAPER_SETTINGS: ClassVar[dict[str, Any]] = {
        "steps": 500, "lr": 0.01, "augment": "both", "aggregate": True,
        "ti_kernel": "gaussian", "ti_size": 7,
    }

    @classmethod
    def paper_params(cls, **overrides: Any) -> PmtParams:
        """Approximately the paper's settings: the full enhanced perturbation (Algorithm 2:
        augmentation, layer aggregation, Gaussian TI kernel) with several hundred steps at a
        small step size. The exact K, alpha and kernel size were not at hand when this was
        written; 500 Adam steps at 0.01 and a 7x7 kernel are our approximation of them."""
        return cls.Params(**{**cls.PAPER_SETTINGS, **overrides})

    def model_names(self, params: PmtParams) -> tuple[str, ...]:
        return ("dlib-resnet",)

    def protect(self, x: torch.Tensor, params: PmtParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        names = self.model_names(params)
        x = x.to(self.device)
        extractors = [extractor(n, params.stage, params.aggregate, self.device) for n in names]
        net = models.get("dlib-resnet", self.device)
        shallow, server = net.split(params.stage)
        if names[0] != "dlib-resnet" and params.upload == "features":
            raise ValueError("the features upload sends dlib-resnet's shallow features: "
                             "list dlib-resnet first")
        with torch.no_grad():
            clean = shallow(x)
            start = _initial(x, params, rng)
            initial = _relative(shallow(start), clean)
        img = quantise(obfuscate(x, start, extractors, params, rng, progress, cancel))
        with torch.no_grad():
            feats = shallow(img)
            final = _relative(feats, clean)

        @functools.cache
        def authorised() -> torch.Tensor:
            with torch.no_grad():
                return server(feats)

        def diagnostics() -> dict[str, float]:
            with torch.no_grad():
                cos = F.cosine_similarity(authorised(), server(clean), dim=1)
                others = {f"authorised_cosine@{n}": _model_cosine(n, img, x, self.device)
                          for n in names if n != "dlib-resnet"}
            return {
                **others,
                "feature_distance": float(final.mean()),
                "feature_distance_max": float(final.max()),
                "initial_feature_distance": float(initial.mean()),
                "distance_reduction": float(initial.mean() / final.mean().clamp_min(1e-12)),
                "authorised_cosine": float(cos.mean()),
                "authorised_cosine_min": float(cos.min()),
            }

        if params.upload == "features":
            return Protected(wire=feats, wire_kind="features", preview=tile_channels(feats),
                             utility=lambda rec: authorised(), metrics=LazyMetrics(diagnostics),
                             image=img)
        return Protected(wire=img, wire_kind="image", preview=image_preview(img),
                         utility=lambda rec: rec.embed(img), metrics=LazyMetrics(diagnostics),
                         image=img, utility_is_embedding=True)


@register("mr_pmt")
class MrPmt(Pmt):
    title = "MR-PMT (PMT restricted to several authorised models at once)"
    Params = MrPmtParams

    def model_names(self, params: PmtParams) -> tuple[str, ...]:
        return params.models  # type: ignore[attr-defined]
