"""SAN: semi-adversarial perturbation that hides gender from a classifier and keeps identity.

Mirjalili et al. train a convolutional autoencoder that takes a face and a gender prototype
(the average face of one gender) and is steered by three losses: pixel similarity, an
auxiliary gender classifier (same-gender prototype keeps the label, opposite-gender prototype
flips it) and a face matcher (the descriptor must not move). Here the classifier is Cydral's
gender network and the matcher dlib-resnet, both differentiable in torch.

Two modes:
- `optimise` (default): the same three losses minimised for each image directly, with Adam on
  the logits of the pixels (so the image stays in [0, 1] without clipping). No training, and
  as strong as the classifier's gradients allow: a per-image upper bound on what SAN can do.
- `autoencoder`: the paper's network, trained by `facepriv train san`; the
  checkpoint carries its weights and the two prototypes.

The server receives the perturbed image; utility is the recogniser on it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

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
)
from facepriv_core.defences.baselines import image_protected, quantise

if TYPE_CHECKING:
    from facepriv_core.models.cydral import CydralGender

SAN_PAPER = Paper(
    title="Semi-Adversarial Networks: Convolutional Autoencoders for Imparting Privacy to "
          "Face Images",
    authors="Mirjalili, Raschka, Namboodiri, Ross",
    venue="ICB 2018",
)
CHECKPOINT_KIND = "san_autoencoder"
GenderTarget = Literal["opposite", "same", "neutral"]
TRAIN_HINT = "train one with: facepriv train san --data sfhq:PATH --out san.pt"


class SANParams(DefenceParams):
    mode: Literal["optimise", "autoencoder"] = Field(
        "optimise", description="optimise: per-image Adam on the SAN losses; autoencoder: the "
                                "paper's trained network (needs `checkpoint`)")
    target: GenderTarget = Field(
        "opposite", description="gender the output should show: the opposite of the original's "
                                "predicted gender, the same one (a control), or neutral "
                                "(p = 0.5; the autoencoder uses the average of both prototypes)")
    steps: int = Field(25, ge=1, le=2000, description="Adam steps per batch (optimise mode)")
    lr: float = Field(0.05, gt=0.0, le=1.0,
                      description="Adam learning rate on the pixel logits (optimise mode)")
    pixel_loss: Literal["mse", "l1"] = Field(
        "mse", description="pixel similarity to the original (optimise mode)")
    pixel_weight: float = Field(
        1000.0, ge=0.0, le=1e6,
        description="weight of the pixel term, a mean over pixels in [0, 1] (mse values are "
                    "~1e-4 here, l1 ~1e-2: scale the weight down about 30x for l1)")
    gender_weight: float = Field(1.0, ge=0.0, le=1e3,
                                 description="weight of the Cydral gender cross-entropy")
    matcher_weight: float = Field(
        1.0, ge=0.0, le=1e3,
        description="weight of ||F(x') - F(x)||^2 on unit dlib-resnet descriptors")
    checkpoint: str | None = Field(
        None, description="SAN autoencoder checkpoint (.pt) for autoencoder mode")

    @model_validator(mode="after")
    def _checkpoint_matches_mode(self) -> SANParams:
        if self.mode == "autoencoder" and self.checkpoint is None:
            raise ValueError(f"mode 'autoencoder' needs a checkpoint; {TRAIN_HINT}")
        if self.mode == "optimise" and self.checkpoint is not None:
            raise ValueError("a checkpoint is only used in mode 'autoencoder'")
        return self


def gender_logits(model: CydralGender, x: torch.Tensor) -> torch.Tensor:
    """Cydral's pre-softmax scores (N, 2): its graph ends in a softmax that saturates to exact
    0/1 on confident faces, where cross-entropy on the probabilities has no gradient left."""
    net = model.net
    *body, (last, (last_in, _)) = zip(net.layers, net.wiring, strict=True)
    if type(last).__name__ != "_Softmax":
        raise ValueError("the gender graph does not end in a softmax")
    values = {net.input_name: model.network_input(x)}
    for layer, (ins, outs) in body:
        values[outs[0]] = layer(*(values[i] for i in ins))
    return values[last_in[0]]


def gender_loss(logits: torch.Tensor, labels: torch.Tensor, target: GenderTarget
                ) -> torch.Tensor:
    """Per-face cross-entropy toward the target gender; labels are the original's (0 female)."""
    logp = F.log_softmax(logits, dim=1)
    if target == "neutral":
        return -logp.mean(dim=1)
    wanted = labels if target == "same" else 1 - labels
    return F.nll_loss(logp, wanted, reduction="none")


def pixel_loss(x: torch.Tensor, ref: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    d = x - ref
    return (d.square() if kind == "mse" else d.abs()).mean(dim=(1, 2, 3))


def matcher_loss(recognizer: nn.Module, x: torch.Tensor, ref_unit: torch.Tensor) -> torch.Tensor:
    """Squared distance of unit descriptors, 2 - 2 cos: the paper's matcher term for dlib."""
    return (F.normalize(recognizer(x), dim=1) - ref_unit).square().sum(dim=1)


def _logit(x: torch.Tensor) -> torch.Tensor:
    return torch.logit(x.clamp(1e-3, 1 - 1e-3))


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SanAutoencoder(nn.Module):
    """[face, prototype] (6 channels) -> face, as in the paper: a small convolutional encoder
    and an upsampling decoder whose last 1x1 layer sees the prototype again.

    Unlike the paper the decoder predicts a change of the pixel logits (initialised to zero)
    at half resolution, upsampled: training starts from the identity (minutes of CPU training
    cannot first learn to reconstruct faces), and it costs a quarter of a full-size network.
    Cydral reads gender from a 32 px chip, so the change it needs is low-frequency anyway.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.config = {"width": width}
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), act, nn.AvgPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), act, nn.AvgPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), act)
        self.up1 = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), act)
        self.up2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), act)
        self.head = nn.Conv2d(width + 3, 3, 1)
        assert self.head.bias is not None  # nn.Conv2d has a bias unless bias=False
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
        proto = F.avg_pool2d(prototype, 2).expand(len(x), -1, -1, -1)
        small = F.avg_pool2d(x, 2)
        h = self.encoder(torch.cat([small, proto], dim=1))
        h = self.up1(_resize(h, (h.shape[-1] * 2,) * 2))
        h = self.up2(_resize(h, small.shape[-2:]))
        delta = _resize(self.head(torch.cat([h, proto], dim=1)), x.shape[-2:])
        return torch.sigmoid(_logit(x) + delta)


def prototype_for(prototypes: torch.Tensor, labels: torch.Tensor, target: GenderTarget
                  ) -> torch.Tensor:
    """(N, 3, H, W) prototypes: same gender, the other one, or the average of both."""
    if target == "neutral":
        return prototypes.mean(dim=0, keepdim=True).expand(len(labels), -1, -1, -1)
    return prototypes[labels if target == "same" else 1 - labels]


def load_autoencoder(path: str | Path, device: torch.device | str
                     ) -> tuple[SanAutoencoder, torch.Tensor, dict[str, Any]]:
    """Network, prototypes (2, 3, 150, 150; female, male) and facts from a checkpoint."""
    from facepriv_core.checkpoints import regular_file
    from facepriv_core.errors import CheckpointError

    try:
        p = regular_file(path, "SAN autoencoder checkpoint")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; {TRAIN_HINT}") from None
    return _cached_autoencoder(str(p.resolve()), p.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=4)
def _cached_autoencoder(path: str, mtime: int, device: str
                        ) -> tuple[SanAutoencoder, torch.Tensor, dict[str, Any]]:
    from facepriv_core import checkpoints

    ckpt = checkpoints.load(path, CHECKPOINT_KIND, "SAN autoencoder checkpoint")
    net = SanAutoencoder(**ckpt["config"])
    net.load_state_dict(ckpt["state_dict"])
    info = {k: v for k, v in ckpt.items() if k not in ("state_dict", "config", "prototypes")}
    return (net.to(device).eval().requires_grad_(False), ckpt["prototypes"].to(device), info)


def gender_facts(versions: dict[str, torch.Tensor], labels: torch.Tensor,
                 ref_unit: torch.Tensor, gender: CydralGender, recognizer: nn.Module
                 ) -> dict[str, float]:
    """Per version: share of faces whose Cydral gender flipped, p(original gender), and the
    dlib cosine to the original (mean, min)."""
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, img in versions.items():
            p = gender.probabilities(img)
            cos = F.cosine_similarity(recognizer(img), ref_unit, dim=1)
            prefix = f"{name}_" if len(versions) > 1 else ""
            out[f"{prefix}flip_rate"] = float((p.argmax(dim=1) != labels).float().mean())
            out[f"{prefix}p_original_gender"] = float(p.gather(1, labels[:, None]).mean())
            out[f"{prefix}cosine"] = float(cos.mean())
            out[f"{prefix}cosine_min"] = float(cos.min())
    return out


@register("san")
class SAN(Defence[SANParams]):
    """Gender hidden from a classifier, identity kept for the matcher (image wire)."""

    title = "SAN (semi-adversarial gender perturbation)"
    paper = SAN_PAPER
    wire_kind = "image"
    Params = SANParams
    optimising = True

    def _models(self) -> tuple[CydralGender, nn.Module]:
        return models.get("cydral-gender", self.device), models.get("dlib-resnet", self.device)

    def protect(self, x: torch.Tensor, params: SANParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        """Deterministic: no randomness is drawn (Adam from the original image, or the
        trained network), so `rng` is not used."""
        gender, recognizer = self._models()
        x = x.to(self.device)
        with torch.no_grad():
            labels = gender.probabilities(x).argmax(dim=1)
            ref_unit = F.normalize(recognizer(x), dim=1)
        if params.mode == "autoencoder":
            versions = self._autoencode(x, labels, params, progress, cancel)
        else:
            versions = {params.target: self._optimise(x, labels, ref_unit, params, gender,
                                                      recognizer, progress, cancel)}
        versions = {k: quantise(v) for k, v in versions.items()}
        result = image_protected(versions[params.target])
        result.metrics = LazyMetrics(
            lambda: gender_facts(versions, labels, ref_unit, gender, recognizer))
        return result

    @torch.enable_grad()  # callers may protect under no_grad (benches, the app's previews)
    def _optimise(self, x: torch.Tensor, labels: torch.Tensor, ref_unit: torch.Tensor,
                  params: SANParams, gender: CydralGender, recognizer: nn.Module,
                  progress: Progress | None, cancel: Cancel | None) -> torch.Tensor:
        w = _logit(x).detach().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=params.lr)
        for step in range(params.steps):
            check_cancel(cancel, ProtectionCancelled, "SAN cancelled")
            img = torch.sigmoid(w)
            loss = (params.pixel_weight * pixel_loss(img, x, params.pixel_loss)
                    + params.gender_weight * gender_loss(gender_logits(gender, img), labels,
                                                         params.target)
                    + params.matcher_weight * matcher_loss(recognizer, img, ref_unit))
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # faces are independent: summing keeps each one's gradient
            opt.step()
            if progress:
                progress(step + 1, params.steps)
        return torch.sigmoid(w).detach()

    def _autoencode(self, x: torch.Tensor, labels: torch.Tensor, params: SANParams,
                    progress: Progress | None, cancel: Cancel | None
                    ) -> dict[str, torch.Tensor]:
        """All three versions (metrics compare them); the wire is the one `target` names."""
        check_cancel(cancel, ProtectionCancelled, "SAN cancelled")
        if params.checkpoint is None:  # SANParams refuses this; kept for the type checker
            raise ValueError(f"mode 'autoencoder' needs a checkpoint; {TRAIN_HINT}")
        net, prototypes, _ = load_autoencoder(params.checkpoint, self.device)
        with torch.no_grad():
            versions = {t: net(x, prototype_for(prototypes, labels, t))
                        for t in ("same", "neutral", "opposite")}
        if progress:
            progress(1, 1)
        return versions
