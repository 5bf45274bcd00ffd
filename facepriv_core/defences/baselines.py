"""Baselines from the FaceMix tables (noise, blur, pixelation) and the two references that
protect nothing (`none`: the image goes to the server; `split`: plain split computing)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core import models
from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    DefenceParams,
    Paper,
    Progress,
    Protected,
    PublicTransform,
    image_preview,
    tile_channels,
)
from facepriv_core.filters import gaussian_kernel1d, separable_blur

FACEMIX = Paper(
    title="FaceMix: Privacy-preserving Facial Attribute Classification on the Cloud",
    authors="Liu, Wu, Zhu, Gan, Han (MIT)",
    venue="baselines of its privacy tables",
)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit image upload carries: values rounded to 1/255 steps in [0, 1]."""
    return x.clamp(0, 1).mul(255).round().div(255)


def image_protected(img: torch.Tensor) -> Protected:
    img = quantise(img)
    return Protected(wire=img, wire_kind="image", preview=image_preview(img),
                     utility=lambda rec: rec.embed(img), image=img, utility_is_embedding=True)


class NoParams(DefenceParams):
    pass


@register("none")
class NoDefence(Defence[NoParams]):
    title = "No defence (the face goes to the server)"
    wire_kind = "image"
    Params = NoParams
    capabilities = frozenset({"simulate", "public_transform"})

    def public_transform(self, params: NoParams) -> PublicTransform:
        return PublicTransform(apply=lambda x: x)

    def protect(self, x: torch.Tensor, params: NoParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        return image_protected(x)


class NoiseParams(DefenceParams):
    sigma: float = Field(8.0, ge=0.0, le=128.0,
                         description="standard deviation of the Gaussian noise on the 0..255 "
                                     "pixel scale (the FaceMix tables use 4 and 8)")


@register("noise")
class GaussianNoise(Defence[NoiseParams]):
    title = "Gaussian noise"
    paper = FACEMIX
    wire_kind = "image"
    Params = NoiseParams
    capabilities = frozenset({"simulate", "public_transform", "known_noise"})

    def public_transform(self, params: NoiseParams) -> PublicTransform:
        """The face itself: the noise drawn is unknown, its scale is public."""
        return PublicTransform(apply=lambda x: x, noise_sigma=params.sigma / 255.0)

    def protect(self, x: torch.Tensor, params: NoiseParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        noise = torch.randn(x.shape, generator=rng, device=rng.device).to(x.device)
        return image_protected(x + noise * (params.sigma / 255.0))


class BlurParams(DefenceParams):
    kernel: int = Field(9, ge=0, le=63,
                        description="Gaussian kernel size in pixels on the 150 px chip (0 or 1 = "
                                    "no blur; even sizes are rounded up to odd)")
    sigma: float = Field(0.0, ge=0.0, le=32.0,
                         description="Gaussian sigma in pixels; 0 derives it from the kernel "
                                     "size as OpenCV does: 0.3 * ((k - 1) / 2 - 1) + 0.8")


def blur_sigma(kernel: int, sigma: float = 0.0) -> float:
    """The sigma actually used: given, else OpenCV's rule from the (odd) kernel size."""
    size = kernel | 1
    return sigma or 0.3 * ((size - 1) / 2 - 1) + 0.8


def blur_psf(kernel: int, sigma: float = 0.0) -> np.ndarray:
    """The 2-D point-spread function of `gaussian_blur` (float64, sums to 1)."""
    if kernel <= 1:
        return np.ones((1, 1))
    k = gaussian_kernel1d(kernel | 1, blur_sigma(kernel, sigma), torch.device("cpu"))
    k64 = k.double().numpy()
    return np.outer(k64, k64)


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: float = 0.0) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders; kernel <= 1 returns x unchanged."""
    if kernel <= 1:
        return x
    k = gaussian_kernel1d(kernel | 1, blur_sigma(kernel, sigma), x.device)
    return separable_blur(x, k, "reflect")


@register("blur")
class GaussianBlur(Defence[BlurParams]):
    title = "Gaussian blur"
    paper = FACEMIX
    wire_kind = "image"
    Params = BlurParams
    capabilities = frozenset({"simulate", "public_transform", "known_blur"})

    def public_transform(self, params: BlurParams) -> PublicTransform:
        return PublicTransform(apply=lambda x: gaussian_blur(x, params.kernel, params.sigma),
                               psf=blur_psf(params.kernel, params.sigma))

    def protect(self, x: torch.Tensor, params: BlurParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        return image_protected(gaussian_blur(x, params.kernel, params.sigma))


class PixelateParams(DefenceParams):
    block: int = Field(8, ge=1, le=75,
                       description="side of the square blocks averaged into one colour, in "
                                   "pixels of the 150 px chip (1 = no pixelation)")


def pixelate(x: torch.Tensor, block: int) -> torch.Tensor:
    """Average each block x block tile (partial tiles at the edges average what they hold)."""
    if block <= 1:
        return x
    h, w = x.shape[-2:]
    small = F.avg_pool2d(x, block, stride=block, ceil_mode=True)
    big = small.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)
    return big[..., :h, :w]


@register("pixelate")
class Pixelate(Defence[PixelateParams]):
    title = "Pixelation"
    paper = FACEMIX
    wire_kind = "image"
    Params = PixelateParams
    capabilities = frozenset({"simulate", "public_transform", "known_blocks"})

    def public_transform(self, params: PixelateParams) -> PublicTransform:
        return PublicTransform(apply=lambda x: pixelate(x, params.block), block=params.block)

    def protect(self, x: torch.Tensor, params: PixelateParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        return image_protected(pixelate(x, params.block))


class SplitParams(DefenceParams):
    stage: str = Field("level4.0", description="the residual stage of dlib-resnet after which "
                                               "the client stops and sends the features")


@register("split")
class PlainSplit(Defence[SplitParams]):
    title = "Split computing (unprotected shallow features go to the server)"
    wire_kind = "features"
    Params = SplitParams
    capabilities = frozenset({"simulate", "public_transform"})

    def public_transform(self, params: SplitParams) -> PublicTransform:
        """dlib-resnet up to the stage: public, key-free and differentiable."""
        return PublicTransform(apply=models.get("dlib-resnet", self.device).split(
            params.stage)[0])

    def protect(self, x: torch.Tensor, params: SplitParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        shallow, server = models.get("dlib-resnet", self.device).split(params.stage)
        with torch.no_grad():
            feats = shallow(x.to(self.device))
        return Protected(wire=feats, wire_kind="features", preview=tile_channels(feats),
                         utility=lambda rec: server(feats))
