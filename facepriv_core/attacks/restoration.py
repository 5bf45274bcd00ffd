"""Classic de-anonymisers: undo a public degradation without learning, then match identities.

When the defence is a public transform of known strength, the server can invert it with
textbook restoration before running its recognisers (Todt et al., "Fantomas: Understanding
Face Anonymization Reversibility", PETS 2024, find such inversions recover much of what blur
and pixelation seem to hide):

* `wiener_deblur`: Wiener or unsupervised Wiener deconvolution (scikit-image) with the blur's
  known point-spread function, after reflect-padding to tame the circular-convolution edges;
* `superres`: read the block means back off the pixelated image and resize them to full size
  with bicubic or Lanczos interpolation (Pillow), which replaces blocks by a smooth surface;
* `denoise`: non-local means (scikit-image) with the noise's known standard deviation.

Each restored image then goes through the identity attack (every recogniser, naive clean
gallery); the rows keep the identity attack's keys, plus `naive_*` of the authorised
recogniser on the protected image itself and ssim/psnr of the restoration, so the gain is
visible in one result.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field
from skimage import restoration

from facepriv_core import metrics
from facepriv_core.attacks import _rules, register
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
from facepriv_core.defences.base import Protected, PublicTransform, image_preview
from facepriv_core.faces import tensor_to_chips
from facepriv_core.verdicts import Rule

THREAT = ThreatModel(
    knows=("wire", "gallery", "defence_algorithm"),
    sentence="The server undoes the public degradation with classic image restoration (its "
             "strength is a public parameter) and matches the result with clean photos.")


class RestorationParams(AttackParams):
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0,
        description="cosine threshold for the authorised recogniser; empty: as the identity "
                    "attack (fitted on the case's clean pairs, else the Olivetti default)")
    other_recognisers: bool = Field(True, description="also match with every other available "
                                                      "recogniser")


class WienerParams(RestorationParams):
    method: Literal["wiener", "unsupervised"] = Field(
        "wiener", description="'wiener': a fixed balance; 'unsupervised': the regularisation "
                              "is estimated per image (Gibbs sampler; slower, and weaker on "
                              "8-bit Olivetti at kernel 21)")
    balance: float = Field(0.005, gt=0.0, le=10.0,
                           description="'wiener': regularisation (noise-to-signal) weight")


class SuperResParams(RestorationParams):
    method: Literal["lanczos", "bicubic"] = Field(
        "lanczos", description="interpolation of the block means back to full size")


class DenoiseParams(RestorationParams):
    h_factor: float = Field(0.8, gt=0.0, le=5.0,
                            description="non-local means filter strength in units of the "
                                        "known noise sigma")


def _channels(x: torch.Tensor) -> tuple[np.ndarray, bool]:
    """float64 NHWC in [0, 1], and whether all three channels are equal (greyscale faces
    are then restored once per image)."""
    arr = x.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    grey = bool(np.allclose(arr[..., 0], arr[..., 1]) and np.allclose(arr[..., 0], arr[..., 2]))
    return arr, grey


def _per_channel(img: np.ndarray, grey: bool, fn: Any) -> np.ndarray:
    if grey:
        return np.repeat(fn(img[..., 0])[..., None], 3, axis=-1)
    return np.stack([fn(img[..., c]) for c in range(img.shape[-1])], axis=-1)


def wiener_deconvolve(x: torch.Tensor, psf: np.ndarray, method: str, balance: float,
                      seed: int) -> torch.Tensor:
    """Deconvolve images (N, 3, H, W) blurred by `psf`; reflect padding by the kernel size
    before, cropped after."""
    arr, grey = _channels(x)
    pad = psf.shape[0]
    rng = np.random.default_rng(seed)

    def one(channel: np.ndarray) -> np.ndarray:
        padded = np.pad(channel, pad, mode="reflect")
        if method == "wiener":
            out = restoration.wiener(padded, psf, balance, clip=True)
        else:
            out, _ = restoration.unsupervised_wiener(padded, psf, clip=True, rng=rng)
        return np.clip(out[pad:-pad, pad:-pad], 0, 1)

    restored = np.stack([_per_channel(img, grey, one) for img in arr])
    return torch.from_numpy(restored).float().permute(0, 3, 1, 2)


def upscale_blocks(x: torch.Tensor, block: int, method: str) -> torch.Tensor:
    """Pixelated images (N, 3, H, W) -> the block means resized back with interpolation."""
    if block <= 1:
        return x.detach().cpu().float()
    h, w = x.shape[-2:]
    rows, cols = math.ceil(h / block), math.ceil(w / block)
    # The block value sits at each block's first pixel (partial edge blocks included).
    small = tensor_to_chips(x[..., ::block, ::block][..., :rows, :cols])
    resample = Image.Resampling.LANCZOS if method == "lanczos" else Image.Resampling.BICUBIC
    out = [np.asarray(Image.fromarray(s).resize((cols * block, rows * block), resample))
           for s in small]
    big = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0
    return big[..., :h, :w].contiguous()


def nl_means(x: torch.Tensor, sigma: float, h_factor: float) -> torch.Tensor:
    """Non-local means with the known noise sigma (on the [0, 1] scale)."""
    arr, grey = _channels(x)

    def one(img: np.ndarray) -> np.ndarray:
        return restoration.denoise_nl_means(img, h=h_factor * sigma, sigma=sigma, patch_size=5,
                                            patch_distance=6, fast_mode=True,
                                            channel_axis=-1 if img.ndim == 3 else None)

    restored = np.stack([one(img[..., 0])[..., None].repeat(3, -1) if grey else one(img)
                         for img in arr])
    return torch.from_numpy(np.clip(restored, 0, 1)).float().permute(0, 3, 1, 2)


class RestorationAttack(Attack[RestorationParams]):
    """Restore the image wire with the defence's public transform, then run the identity
    attack on it. Subclasses say what they need and implement `restore`."""

    threat = THREAT
    applies_to = frozenset({"image"})
    needs: ClassVar[frozenset[str]]
    verdict_phrasing = _rules.IDENTITY

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        """The identity attack's rules, on the restored faces."""
        return _rules.identity_rules(case, result)

    def restore(self, image: torch.Tensor, transform: PublicTransform, params: Any,
                seed: int) -> torch.Tensor:
        raise NotImplementedError

    def run(self, case: AttackCase, params: RestorationParams,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> AttackResult:
        from facepriv_core.attacks.identity import IdentityAbuse, IdentityParams

        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        transform = case.defence.public_transform(case.defence_params)
        if transform is None:
            raise ValueError(f"{case.defence.title} declares no public transform")
        n = case.original.shape[0]
        prot = case.protected
        image = (prot.image if prot.image is not None else prot.wire)[:n].float()
        restored = torch.cat([
            self._restore_step(image[i:i + 16], transform, params, case.seed + i, cancel)
            for i in range(0, n, 16)]).to(case.device)
        if progress:
            progress(ProgressEvent(1, 2, tensor_to_chips(restored[:1])[0]))
        wire = Protected(wire=restored, wire_kind="image", preview=image_preview(restored),
                         utility=lambda rec: rec.embed(restored), image=restored)
        sub = AttackCase(original=case.original, protected=wire, defence=case.defence,
                         defence_params=case.defence_params, identities=case.identities,
                         seed=case.seed, embeddings=case.embeddings)
        identity = IdentityAbuse(self.device)
        matched = identity.run(sub, IdentityParams(threshold=params.threshold,
                                                   other_recognisers=params.other_recognisers),
                               cancel=cancel)
        naive = identity.run(case, IdentityParams(threshold=params.threshold,
                                                  other_recognisers=False), cancel=cancel)
        originals = tensor_to_chips(case.original)
        restored_img = metrics.batch_image_metrics(originals, tensor_to_chips(restored))
        naive_img = metrics.batch_image_metrics(originals, tensor_to_chips(image))
        rows = []
        for i, (row, base) in enumerate(zip(matched.per_image, naive.per_image, strict=True)):
            rows.append({**row, "ssim": restored_img["ssim"][i], "psnr": restored_img["psnr"][i],
                         "naive_cosine": base["cosine"], "naive_match_rate": base["match_rate"],
                         "naive_rank1": base["rank1"], "naive_ssim": naive_img["ssim"][i],
                         "naive_psnr": naive_img["psnr"][i]})
        if progress:
            progress(ProgressEvent(2, 2, tensor_to_chips(restored[:1])[0]))
        details = {**matched.details, "restoration": type(self).__name__,
                   "method": getattr(params, "method", "nl_means")}
        return AttackResult(self.name, self.threat, rows, reconstructions=restored.cpu(),
                            details=details)

    def _restore_step(self, image: torch.Tensor, transform: PublicTransform, params: Any,
                      seed: int, cancel: CancelFn | None) -> torch.Tensor:
        check_cancel(cancel)
        return self.restore(image, transform, params, seed)


@register("wiener_deblur")
class WienerDeblur(RestorationAttack):
    title = "Wiener deconvolution of a known blur, then identity matching"
    needs = frozenset({"public_transform", "known_blur"})
    Params = WienerParams

    def restore(self, image: torch.Tensor, transform: PublicTransform, params: Any,
                seed: int) -> torch.Tensor:
        assert transform.psf is not None
        return wiener_deconvolve(image, transform.psf, params.method, params.balance, seed)


@register("superres")
class SuperResolution(RestorationAttack):
    title = "Bicubic / Lanczos super-resolution of known blocks, then identity matching"
    needs = frozenset({"public_transform", "known_blocks"})
    Params = SuperResParams

    def restore(self, image: torch.Tensor, transform: PublicTransform, params: Any,
                seed: int) -> torch.Tensor:
        assert transform.block is not None
        return upscale_blocks(image, transform.block, params.method)


@register("denoise")
class Denoise(RestorationAttack):
    title = "Non-local means denoising of known noise, then identity matching"
    needs = frozenset({"public_transform", "known_noise"})
    Params = DenoiseParams

    def restore(self, image: torch.Tensor, transform: PublicTransform, params: Any,
                seed: int) -> torch.Tensor:
        assert transform.noise_sigma is not None
        return nl_means(image, transform.noise_sigma, params.h_factor)
