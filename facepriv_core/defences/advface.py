"""AdvFace: adversarial features that a reconstruction network cannot map back to the face.

After Wang et al., "Privacy-preserving Adversarial Facial Features" (CVPR 2023; the method is
called AdvFace there). The defender builds a shadow model of the attacker: a decoder from
features to faces, trained on auxiliary faces of other people. Each feature to be stored or
sent is then pushed, within a small budget, in the direction that most hurts the shadow
decoder's reconstruction, while the recogniser's output barely moves.

Choices here, and why:

* Features: the paper perturbs the recogniser's embedding; the workbench's feature wires are
  dlib-resnet shallow features at `stage` (as the `split` defence sends them), so the shadow
  decoder is train.decoder's WireDecoder trained on the `split` wires of the auxiliary
  faces, exactly what the learned-decoder attacker would train.
* Objective: ascend 1 - SSIM (or MSE) of the shadow reconstruction to the original face,
  which the defender holds, rather than the paper's loss between shadow and re-reconstructed
  images.
* Budget: relative to each face's feature scale, so one `epsilon` means the same on every
  stage. L-inf: |delta| <= epsilon * max|f|; L2: ||delta|| <= epsilon * ||f||. Perturbed
  features are kept non-negative, since every stage ends in a ReLU and negative values would
  give the perturbation away.
* Recognition constraint: the cosine between the server part's output on the perturbed and
  on the clean feature must stay >= `min_cosine`. Each step ascends the reconstruction loss
  along the part of its gradient that does not lower the cosine (the component against the
  cosine gradient is removed; under L-inf the step is its sign); a face whose step still
  breaks the constraint backtracks to its last feasible iterate and halves its step size.
  The wire is each face's feasible iterate with the highest loss, so the constraint holds
  for every face by construction.
* PGD starts at the clean feature, so the result is deterministic without drawing from
  `rng`.

Shadow decoders are cached under train.decoder.cache_dir() by a digest of the stage,
decoder training params, auxiliary spec and seed, and the WireDecoder ARCHITECTURE.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core import metrics, models
from facepriv_core.cancel import Cancelled, check_cancel
from facepriv_core.defences import get as get_defence
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
    report_progress,
    tile_channels,
)
from facepriv_core.faces import tensor_to_chips
from facepriv_core.metrics import ssim_torch
from facepriv_core.models.dlib_resnet import DEFAULT_SPLIT
from facepriv_core.progress import ProgressEvent
from facepriv_core.train.aux_faces import load_aux, resolve_aux
from facepriv_core.train.decoder import (
    ARCHITECTURE,
    DecoderRecipe,
    WireDecoder,
    cache_dir,
    config_digest,
    load_cached_decoder,
    save_decoder,
    train_decoder,
)

ADVFACE = Paper(
    title="Privacy-preserving Adversarial Facial Features",
    authors="Wang, Wang, Jin, Zhang, Hu, Wang, Sun, Yuan, Liu, Ren",
    venue="CVPR 2023",
)

#: Faces per forward/backward pass, to bound autograd memory on large batches.
CHUNK = 16


class AdvFaceParams(DefenceParams):
    stage: str = Field(DEFAULT_SPLIT, description="dlib-resnet stage whose output features are "
                                                  "perturbed and sent (as in `split`)")
    epsilon: float = Field(0.1, ge=0.0, le=1.0,
                           description="perturbation budget relative to each face's features: "
                                       "L-inf: |delta| <= epsilon * max|f|; L2: ||delta|| <= "
                                       "epsilon * ||f||")
    norm: Literal["linf", "l2"] = Field("linf", description="norm of the budget")
    min_cosine: float = Field(0.98, ge=-1.0, le=1.0,
                              description="least cosine between the server part's output on the "
                                          "perturbed and on the clean feature, for every face")
    steps: int = Field(20, ge=0, le=1000, description="projected gradient steps")
    step_size: float = Field(0.25, gt=0.0, le=1.0,
                             description="initial step as a fraction of the budget; halved for "
                                         "a face whenever its step breaks the cosine constraint")
    loss: Literal["ssim", "mse"] = Field("ssim", description="reconstruction error ascended: "
                                                             "1 - SSIM or MSE to the face")
    aux: str = Field("", description="auxiliary faces of other people for the shadow decoder, "
                                     "as a dataset spec, e.g. sfhq:PATH or folder:PATH "
                                     "(empty: this machine's SFHQ or LFW)")
    aux_limit: int = Field(300, ge=2, le=100_000, description="auxiliary faces to sample")
    decoder_epochs: int = Field(20, ge=0, le=1000, description="shadow decoder training epochs")
    decoder_width: int = Field(16, ge=8, le=256,
                               description="channels of the shadow decoder's first block")
    decoder_seed: int = Field(0, ge=0, le=2**31 - 1,
                              description="seed of the auxiliary sample and decoder training")


def shadow_decoder(params: AdvFaceParams, device: torch.device,
                   progress: Callable[[int], None] | None = None, cancel: Cancel | None = None
                   ) -> tuple[WireDecoder, dict[str, Any]]:
    """The defender's shadow decoder for `params`: from the disk cache, else trained on the
    `split` wires of the auxiliary faces and saved. info["cached"] says which."""
    aux = resolve_aux(params.aux, "advface")
    dparams = DecoderRecipe(aux=aux, aux_limit=params.aux_limit,
                            epochs=params.decoder_epochs, width=params.decoder_width,
                            device=device.type)
    split = get_defence("split", device)
    split_params = split.Params(stage=params.stage)
    config = {"architecture": ARCHITECTURE, "purpose": "advface-shadow",
              "defence_params": split_params.model_dump(mode="json"),
              "decoder": dparams.config(),
              "seed": params.decoder_seed}
    path = cache_dir() / f"shadow-advface-{config_digest(config)}.pt"
    if path.is_file():
        decoder, info = load_cached_decoder(path, params.decoder_width, device)
        return decoder, {**info, "cached": True}
    chips, _, _ = load_aux(params.aux, params.aux_limit, params.decoder_seed)

    def report(event: ProgressEvent) -> None:
        if progress:
            progress(event.step)

    try:
        decoder, info = train_decoder(split, split_params, chips, dparams,
                                      seed=params.decoder_seed, progress=report, cancel=cancel)
    except Cancelled as e:
        raise ProtectionCancelled("advface cancelled while training its shadow decoder") from e
    save_decoder(path, decoder, info, config)
    return decoder, {**info, "cached": False}


def _first_chip(x: torch.Tensor) -> np.ndarray:
    """The first face of a reconstruction batch, for the live preview."""
    return tensor_to_chips(x[:1].detach().clamp(0, 1))[0]


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(dim=1).view(-1, *[1] * (a.dim() - 1))


@register("advface")
class AdvFace(Defence[AdvFaceParams]):
    title = "AdvFace (features perturbed against a shadow reconstruction network)"
    paper = ADVFACE
    wire_kind = "features"
    Params = AdvFaceParams
    optimising = True

    def protect(self, x: torch.Tensor, params: AdvFaceParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        start = time.perf_counter()
        evaluations = params.steps + 1

        def epoch_done(epoch: int) -> None:
            report_progress(progress, epoch, params.decoder_epochs + evaluations,
                            f"training shadow decoder {epoch}/{params.decoder_epochs}")

        decoder, info = shadow_decoder(params, self.device, epoch_done, cancel)
        done = 0 if info["cached"] else params.decoder_epochs
        total = done + evaluations
        shallow, server = models.get("dlib-resnet", self.device).split(params.stage)
        x = x.to(self.device)
        with torch.no_grad():
            f = shallow(x)
            e0 = server(f)
        dims = tuple(range(1, f.dim()))
        shape = (-1, *[1] * (f.dim() - 1))
        radius = params.epsilon * (f.amax(dim=dims) if params.norm == "linf"
                                   else f.flatten(1).norm(dim=1)).view(shape)

        def evaluate(delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Per face: loss, cosine, their gradients in delta, and the reconstruction."""
            out: list[tuple[torch.Tensor, ...]] = []
            for i in range(0, len(f), CHUNK):
                with torch.enable_grad():  # callers may protect under no_grad
                    out.append(evaluate_chunk(i, delta[i:i + CHUNK]))
            return tuple(torch.cat(parts) for parts in zip(*out, strict=True))

        def evaluate_chunk(i: int, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """evaluate() on faces i..i+CHUNK, one graph at a time to bound memory."""
            fa = (f[i:i + CHUNK] + delta).requires_grad_()
            recon = decoder(fa)
            xi = x[i:i + CHUNK]
            loss = (1 - ssim_torch(recon, xi) if params.loss == "ssim"
                    else (recon - xi).pow(2).mean(dim=(1, 2, 3)))
            cos = F.cosine_similarity(server(fa), e0[i:i + CHUNK], dim=1)
            g_loss, = torch.autograd.grad(loss.sum(), fa)
            g_cos, = torch.autograd.grad(cos.sum(), fa)
            return loss.detach(), cos.detach(), g_loss, g_cos, recon.detach()

        def direction(g: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            """The loss gradient without its component that would lower the cosine."""
            along = _flat_dot(g, c).clamp(max=0) / _flat_dot(c, c).clamp_min(1e-20)
            d = g - along * c
            if params.norm == "linf":
                return d.sign()
            return d / d.flatten(1).norm(dim=1).clamp_min(1e-20).view(shape)

        def project(delta: torch.Tensor) -> torch.Tensor:
            if params.norm == "linf":
                delta = torch.maximum(torch.minimum(delta, radius), -radius)
            else:
                norm = delta.flatten(1).norm(dim=1).view(shape)
                delta = delta * (radius / norm.clamp_min(1e-20)).clamp(max=1.0)
            return torch.maximum(delta, -f)  # features stay non-negative, like a ReLU output

        delta = torch.zeros_like(f)
        cand = delta
        alpha = params.step_size * radius
        best = delta
        best_loss = torch.full((len(f),), -torch.inf, device=f.device)
        best_cos = torch.ones(len(f), device=f.device)
        grads: tuple[torch.Tensor, torch.Tensor] | None = None
        clean_recon: torch.Tensor | None = None
        best_recon: torch.Tensor | None = None
        for k in range(evaluations):
            check_cancel(cancel, ProtectionCancelled, "advface cancelled")
            loss, cos, g, c, recon = evaluate(cand)
            if clean_recon is None:
                clean_recon, best_recon, grads = recon, recon, (g, c)
            assert grads is not None and best_recon is not None  # set by the first evaluation
            ok = (cos >= params.min_cosine) | (k == 0)
            okv = ok.view(shape)
            delta = torch.where(okv, cand, delta)
            grads = (torch.where(okv, g, grads[0]), torch.where(okv, c, grads[1]))
            alpha = torch.where(okv, alpha, alpha / 2)
            better = ok & (loss > best_loss)
            best = torch.where(better.view(shape), cand, best)
            best_recon = torch.where(better.view(shape), recon, best_recon)
            best_loss = torch.where(better, loss, best_loss)
            best_cos = torch.where(better, cos, best_cos)
            done += 1
            report_progress(progress, done, total, f"optimising {k + 1}/{evaluations}",
                            None if best_recon is None else
                            functools.partial(_first_chip, best_recon))
            if k < params.steps:
                cand = project(delta + alpha * direction(*grads))

        assert clean_recon is not None and best_recon is not None  # evaluations >= 2
        wire = (f + best).detach()
        budget = (best.flatten(1).abs().amax(dim=1) if params.norm == "linf"
                  else best.flatten(1).norm(dim=1)) / radius.flatten().clamp_min(1e-20)
        originals = tensor_to_chips(x)
        seconds = time.perf_counter() - start

        def image_metrics() -> dict[str, float]:
            def mean_ssim(recon: torch.Tensor) -> float:
                chips = tensor_to_chips(recon)
                return float(np.mean([metrics.ssim(a, b)
                                      for a, b in zip(originals, chips, strict=True)]))

            return {"shadow_ssim_clean": mean_ssim(clean_recon),
                    "shadow_ssim_adversarial": mean_ssim(best_recon),
                    "cosine_mean": float(best_cos.mean()), "cosine_min": float(best_cos.min()),
                    "budget_used": float(budget.mean()),
                    "relative_l2": float((best.flatten(1).norm(dim=1)
                                          / f.flatten(1).norm(dim=1).clamp_min(1e-20)).mean()),
                    "shadow_cached": float(info["cached"]),
                    "shadow_val_ssim": float(info["val_ssim"]),
                    "seconds": seconds}

        return Protected(wire=wire, wire_kind="features", preview=tile_channels(wire),
                         utility=lambda rec: server(wire), metrics=LazyMetrics(image_metrics))
