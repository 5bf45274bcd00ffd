"""PPFR-FD white-box recovery: undo the fast masking as far as public knowledge allows.

The setting of Wang et al.'s (AAAI 2022) own attack experiments: the attacker knows the whole
pipeline (luma, 8x8 block DCT, the kept channels, self-normalisation, mixing) but neither
Shuffle1's seed nor the per-image Shuffle2. Steps, on auxiliary faces of other people for the
statistics the wire no longer holds:

1. Channel identity. Per image, wire channels are ranked by energy (mean square over the 14 x
   14 positions); auxiliary faces give the expected energy ranking of the kept frequencies
   after self-normalisation (exactly computable there: the normalisation is order-invariant).
   The k-th most energetic wire channel is taken for the k-th most energetic frequency. A
   mixed channel is (E_a + E_b) / 2 with a, b adjacent in Shuffle1's secret order; which pair
   it holds cannot be told, so it stands for its dominant (most energetic) member, and the
   mixing is not undone: the adjacency chain is Shuffle1 itself.
2. Self-normalisation removed each block's mean and spread across its channels; they are not
   in the wire, so the auxiliary faces' average per-block mean and spread are put back.
3. The DC channel (dropped) is borrowed: the auxiliary faces' mean DC per block.
4. Inverse block DCT gives a 112 x 112 grey face, resized to 150 x 150 and repeated to RGB.

Scoring: SSIM and PSNR against the grey (BT.601 luma) version of the original chip, since no
colour reaches the wire; `cosine` compares dlib descriptors of the grey reconstruction and the
colour original (details["grey_original_cosine"] is the ceiling grey costs). The auxiliary
mean face, with no wire information at all, is scored alongside as the baseline.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from facepriv_core import metrics, models
from facepriv_core.attacks import _rules, register
from facepriv_core.attacks._common import preview
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
from facepriv_core.defences.ppfr_fd import (
    FACE_SIZE,
    LUMA_601,
    PPFRParams,
    block_dct,
    block_idct,
    selected_channels,
    self_normalise,
    to_grey112,
)
from facepriv_core.faces import chips_to_tensor, tensor_to_chips
from facepriv_core.train.aux_faces import load_aux, same_people
from facepriv_core.verdicts import Rule

CHIP = 150
STEPS = 4


class PPFRWhiteboxParams(AttackParams):
    aux: str = Field("", description="auxiliary faces as a dataset spec (e.g. sfhq:PATH); "
                                     "attacked people are excluded")
    aux_limit: int = Field(100, ge=2, le=100_000, description="auxiliary faces to sample")
    use_cache: bool = Field(True, description="reuse aligned auxiliary faces between runs")


def grey_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> the BT.601 luma repeated to three channels (same size)."""
    w = torch.tensor(LUMA_601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def to_chip(grey112: torch.Tensor) -> torch.Tensor:
    """(N, 1, 112, 112) grey -> (N, 3, 150, 150) grey RGB in [0, 1] for scoring and display."""
    up = F.interpolate(grey112, size=(CHIP, CHIP), mode="bilinear", align_corners=False)
    return up.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def aux_statistics(aux: torch.Tensor, kept: list[int]) -> dict[str, torch.Tensor]:
    """What the wire lost, averaged over auxiliary chips (N, 3, 150, 150): the expected energy
    of each kept channel after self-normalisation, the per-block mean and spread across the
    kept channels, the mean DC per block and the mean grey face."""
    coef = block_dct(to_grey112(aux))
    raw = coef[:, kept]
    return {
        "energy": self_normalise(raw).pow(2).mean(dim=(0, 2, 3)),
        "block_mean": raw.mean(dim=1).mean(dim=0),
        "block_std": raw.std(dim=1, correction=0).mean(dim=0),
        "dc": coef[:, 0].mean(dim=0),
        "mean_face": to_grey112(aux).mean(dim=0, keepdim=True),
    }


def assign_channels(wire: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """(N, W) index into the kept channels for each wire channel: equal energy ranks."""
    by_energy = energy.argsort(descending=True)[:wire.shape[1]]
    ranks = wire.pow(2).mean(dim=(2, 3)).argsort(dim=1, descending=True)
    assigned = torch.empty_like(ranks)
    assigned.scatter_(1, ranks, by_energy.expand_as(ranks))
    return assigned


def reconstruct(wire: torch.Tensor, assigned: torch.Tensor, kept: list[int],
                stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 1, 112, 112) grey faces from the wire and its channel assignment."""
    n, _, bh, bw = wire.shape
    normalised = torch.zeros(n, len(kept), bh, bw, dtype=wire.dtype)
    normalised.scatter_(1, assigned[:, :, None, None].expand_as(wire), wire)
    coef = torch.zeros(n, 64, bh, bw, dtype=wire.dtype)
    coef[:, kept] = normalised * stats["block_std"] + stats["block_mean"]
    if 0 not in kept:
        coef[:, 0] = stats["dc"]
    return block_idct(coef).clamp(0, 1)


@register("ppfr_fd_whitebox")
class PPFRFDWhitebox(Attack[PPFRWhiteboxParams]):
    title = "PPFR-FD white-box recovery (energy-ranked channels, auxiliary statistics)"
    threat = ThreatModel(
        knows=("wire", "defence_algorithm", "auxiliary_data"),
        sentence="The server knows the frequency pipeline but not the shuffles, guesses each "
                 "channel's frequency from its energy and fills in what masking removed from "
                 "other people's faces.",
    )
    applies_to = frozenset({"frequency"})
    needs = frozenset({"frequency_masking"})
    Params = PPFRWhiteboxParams
    verdict_phrasing = _rules.RECONSTRUCTION

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        """Reconstruction rules, SSIM against the auxiliary mean face this attack starts from
        (both scored against the grey original)."""
        base = result.details.get("baseline_mean_face", {})
        ssim = (float(base["ssim"]), "SSIM of the auxiliary faces' mean face to the grey "
                                     "original") if "ssim" in base else None
        return _rules.reconstruction_rules(case, result, baseline_ssim=ssim)

    def _score(self, case: AttackCase, recon: torch.Tensor) -> list[dict[str, float]]:
        net = models.get("dlib-resnet", self.device)
        with torch.no_grad():
            emb = net(recon.to(self.device)).cpu()
        cos = metrics.cosine(emb, case.original_embedding("dlib-resnet").cpu()).tolist()
        images = metrics.batch_image_metrics(tensor_to_chips(grey_rgb(case.original.cpu())),
                                             tensor_to_chips(recon))
        return [{"ssim": s, "psnr": p, "cosine": c}
                for s, p, c in zip(images["ssim"], images["psnr"], cos, strict=True)]

    def run(self, case: AttackCase, params: PPFRWhiteboxParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        start = time.perf_counter()

        def step(k: int, image: torch.Tensor | None = None) -> None:
            check_cancel(cancel)
            if progress:
                progress(ProgressEvent(k, STEPS, None if image is None else preview(image)))

        if not params.aux:
            raise ValueError(f"{self.name} needs auxiliary faces of other people: set `aux` to "
                             "a dataset spec such as sfhq:/path/to/sfhq")
        chips, _, emb = load_aux(params.aux, params.aux_limit, case.seed, params.use_cache)
        drop = same_people(emb, case.original)
        if (~drop).sum() < 2:
            raise ValueError(f"only {(~drop).sum()} auxiliary faces are not the attacked people")
        kept = selected_channels(case.defence_params_as(PPFRParams))
        stats = aux_statistics(chips_to_tensor(chips[~drop]), kept)
        step(1)
        n = case.original.shape[0]
        wire = case.protected.wire[:n].detach().cpu().float()
        assigned = assign_channels(wire, stats["energy"])
        step(2)
        recon = to_chip(reconstruct(wire, assigned, kept, stats))
        step(3, recon)
        rows = self._score(case, recon)
        mean_face = to_chip(stats["mean_face"]).expand(n, -1, -1, -1)
        baseline = self._score(case, mean_face)
        with torch.no_grad():
            grey_emb = models.get("dlib-resnet", self.device)(
                grey_rgb(case.original).to(self.device)).cpu()
        ceiling = metrics.cosine(grey_emb, case.original_embedding("dlib-resnet").cpu())
        step(4, recon)
        return AttackResult(
            attack=self.name, threat_model=self.threat, per_image=rows,
            reconstructions=recon,
            details={
                "ssim_reference": "grey (BT.601 luma) original, 150 x 150",
                "assigned_frequency": [[kept[int(c)] for c in row] for row in assigned],
                "frequencies_by_energy": [kept[int(c)] for c in
                                          stats["energy"].argsort(descending=True)],
                "baseline_mean_face": {k: float(np.mean([r[k] for r in baseline]))
                                       for k in ("ssim", "psnr", "cosine")},
                "grey_original_cosine": float(ceiling.mean()),
                "aux_faces": int((~drop).sum()), "aux_excluded": int(drop.sum()),
                "face_size": FACE_SIZE, "seconds": time.perf_counter() - start,
            },
        )
