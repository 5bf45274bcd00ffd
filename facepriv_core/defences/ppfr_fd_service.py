"""PPFR-FD's authorised service at protect/utility time: slot assignment, inverse-DCT layer,
the recogniser behind it, its checkpoint and cache path, and the untrained fallback.

How the service recognises from the masked wire, and why (training: facepriv_core.train.
ppfr_fd_service, whose docstring gives the recipe and its measurements):

* Who knows what. In Wang et al. (AAAI 2022) the recogniser is trained on wires the system's
  own masking makes, with its fixed Shuffle1; Shuffle2 is drawn afresh for every image and
  known to nobody. So the service holds Shuffle1 (the key; an outside attacker does not, see
  attacks/ppfr_fd_whitebox.py) and must cope with Shuffle2 per image.
* Shuffle2: channel identity survives the masking. Self-normalisation is an affine map per
  position, so each wire channel keeps its spatial pattern over the aligned face; a diagonal
  Gaussian per canonical slot (mean and variance at each of the 14 x 14 positions, from
  training faces) scores every wire channel against every slot, and an optimal assignment
  (Hungarian) puts the channels back in order (82-89 % of Olivetti's channels right from
  templates of 20 other Olivetti people). Learning order invariance instead (the untrained
  adapter's design, a channel-set encoder feeding dlib's level4) reached cosine 0.88 to the
  clean embedding with rank-1 at chance.
* A fixed inverse-DCT layer: with the order back and Shuffle1 known, the mixing
  (E_j + E_{j+1}) / 2 is inverted by its pseudo-inverse, each block's coefficients are
  re-standardised, the DC channel is set to mid grey, and the inverse block DCT rebuilds a
  112 x 112 high-pass face, resized to the 150 dlib chip, which (fine-tuned) dlib-resnet embeds.
  The templates depend on the key only through Shuffle1, so they are rebuilt for any key from
  the training faces' kept coefficients stored in the checkpoint.

Everything an insider holding Shuffle1 can do is what this service does: it rebuilds a
recognisable high-pass face internally. That is a property of PPFR-FD, recorded in
docs/reproduction.md; the white-box attack (no Shuffle1) still fails.

This module imports nothing from facepriv_core.train (train/ imports it, never the reverse).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from facepriv_core.cache import cache_root, config_digest
from facepriv_core.defences.ppfr_fd_adapter import untrained_adapter
from facepriv_core.defences.ppfr_fd_masking import (
    PPFRParams,
    block_idct,
    mask_coefficients,
    selected_channels,
    self_normalise,
    wire_channels,
)

CHECKPOINT_KIND = "ppfr_fd_service"
#: Bump when the recipe changes: cached services of an older recipe are then retrained.
RECIPE_VERSION = 2
#: Defence params the service depends on (shape and content of the wire). Never the seed.
WIRE_PARAMS = ("channels", "selection", "drop_dc", "mix")
CHIP = 150
#: Orthonormal 8x8 DCT: the DC coefficient of a block of constant value v is 8 v.
MID_GREY_DC = 8 * 0.5
#: Mean spread of a block's kept AC coefficients (pixel scale [0, 1]) on SFHQ, to rescale the
#: re-standardised coefficients to image contrast.
BLOCK_STD = 0.07
VAR_FLOOR = 1e-3
#: Weight of the mixing chain in the slot assignment (`assign_slots`), chosen on SFHQ faces the
#: trainer holds out (channels right: 0.57 without, 0.76 at 30, 0.82-0.83 at 100-150, 0.81 at 300).
ADJACENCY_WEIGHT = 100.0
MAX_SWAPS = 60


def wire_config(params: PPFRParams) -> dict[str, Any]:
    return {k: getattr(params, k) for k in WIRE_PARAMS}


def cache_path(params: PPFRParams) -> Path:
    """Where the service trained for this wire configuration is cached."""
    digest = config_digest({"kind": CHECKPOINT_KIND, "recipe": RECIPE_VERSION,
                            **wire_config(params)})
    return cache_root() / "services" / f"ppfr_fd-{digest}.pt"


def kept_ac(params: PPFRParams) -> list[int]:
    """Kept channels without DC (the order Shuffle1 permutes)."""
    return [c for c in selected_channels(params) if c != 0]


def canonical_wires(coef: torch.Tensor, params: PPFRParams, shuffle1: torch.Tensor
                    ) -> torch.Tensor:
    """Wires of block-DCT coefficients with Shuffle2 the identity (the slots' own order)."""
    c = wire_channels(params)
    ident = torch.arange(c, device=coef.device).expand(coef.shape[0], c)
    return mask_coefficients(coef, params, shuffle1, ident)


class SlotTemplates:
    """Per canonical slot, a diagonal Gaussian over the 14 x 14 positions (from faces' wires);
    with `adjacency` > 0, also the mixing's chain: see `assign_slots`."""

    def __init__(self, canonical: torch.Tensor, adjacency: float = 0.0) -> None:
        flat = canonical.flatten(2).double()  # (N, C, P)
        self.mean = flat.mean(dim=0)  # (C, P)
        self.inv_var = 1 / (flat.var(dim=0) + VAR_FLOOR)
        self.log_var = (-self.inv_var.log()).sum(dim=1)  # (C,)
        self.adjacency = adjacency

    def costs(self, wire: torch.Tensor) -> torch.Tensor:
        """(N, C_wire, C_slot) negative log-likelihood of wire channel c in slot k."""
        w = wire.flatten(2).double().cpu()
        quad = (w.pow(2) @ self.inv_var.T - 2 * w @ (self.mean * self.inv_var).T
                + (self.mean.pow(2) * self.inv_var).sum(dim=1))
        return quad + self.log_var

    def reorder(self, wire: torch.Tensor) -> torch.Tensor:
        """The wire with its channels put back into slot order, image by image."""
        costs = self.costs(wire).numpy()
        channels = wire.flatten(2).double().cpu().numpy()
        order = np.stack([assign_slots(cost, chans, self.adjacency)
                          for cost, chans in zip(costs, channels, strict=True)])
        index = torch.from_numpy(order).to(wire.device)
        rows_ix = torch.arange(wire.shape[0], device=wire.device).unsqueeze(1)
        return wire[rows_ix, index]


def assign_slots(cost: np.ndarray, channels: np.ndarray, adjacency: float,
                 max_swaps: int = MAX_SWAPS) -> np.ndarray:
    """The wire channel for each slot: (C_slot,) from one image's (C_wire, C_slot) costs.

    The optimal assignment (Hungarian) of the templates' costs; then, with `adjacency` > 0,
    swaps of two slots while they lower cost - adjacency * (sum over neighbouring slots k,
    k + 1 of the correlation of their channels over the 14 x 14 positions). The mixing
    (E_j + E_{j+1}) / 2 makes slots k and k + 1 share a component, so neighbours in the true
    order correlate (mean 0.5 on Olivetti, 0.07 for other pairs): Shuffle2 does not hide that
    chain. Measured (channels right, Olivetti people 20-39, templates from 0-19 + SFHQ): 83 %
    with the templates alone, 90-93 % with the chain, 100 % being the order the wire was made
    in; verification 0.923 -> 0.935-0.941 (the network trained without the chain).
    """
    rows, cols = linear_sum_assignment(cost)
    slot_channel = np.empty(cost.shape[1], dtype=np.int64)
    slot_channel[cols] = rows
    if adjacency <= 0:
        return slot_channel
    z = channels - channels.mean(axis=1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    corr = z @ z.T
    n = len(slot_channel)
    first, second = np.triu_indices(n, 1)
    slots = np.arange(n)
    pick = np.arange(len(first))

    def objective(order: np.ndarray) -> np.ndarray:
        return (cost[order, slots].sum(axis=-1)
                - adjacency * corr[order[..., :-1], order[..., 1:]].sum(axis=-1))

    best = float(objective(slot_channel))
    for _ in range(max_swaps):
        swapped = np.repeat(slot_channel[None], len(first), axis=0)
        swapped[pick, first] = slot_channel[second]
        swapped[pick, second] = slot_channel[first]
        values = objective(swapped)
        k = int(values.argmin())
        if values[k] >= best - 1e-9:
            break
        slot_channel, best = swapped[k], float(values[k])
    return slot_channel


def templates_for(coef: torch.Tensor, params: PPFRParams, shuffle1: torch.Tensor,
                  chain: bool = True) -> SlotTemplates:
    """Slot templates from training faces' coefficients for this key's Shuffle1; with `chain`,
    the mixing's chain too (only when the wire is mixed: otherwise neighbours share nothing)."""
    return SlotTemplates(canonical_wires(coef, params, shuffle1),
                         ADJACENCY_WEIGHT if chain and params.mix else 0.0)


class InverseDCT(nn.Module):
    """Fixed layer: slot-ordered wire + Shuffle1 -> the masked high-pass face, (N, 3, 150, 150).

    Pseudo-inverse of the channel mixing, re-standardisation per block, Shuffle1 undone,
    DC at mid grey, inverse block DCT, resized to the dlib chip and repeated to RGB."""

    def __init__(self, params: PPFRParams) -> None:
        super().__init__()
        self.kept = kept_ac(params)
        k, c = len(self.kept), wire_channels(params)
        if params.mix:
            mixing = torch.zeros(c, k)
            mixing[torch.arange(c), torch.arange(c)] = 0.5
            mixing[torch.arange(c), torch.arange(1, c + 1)] = 0.5
            unmix = torch.linalg.pinv(mixing)
        else:
            unmix = torch.eye(k)
        self.register_buffer("unmix", unmix)
        self.has_dc = not params.drop_dc

    def forward(self, slotted: torch.Tensor, shuffle1: torch.Tensor) -> torch.Tensor:
        e = self_normalise(torch.einsum("kc,nchw->nkhw", self.unmix, slotted))
        n, _, bh, bw = e.shape
        coef = torch.zeros(n, 64, bh, bw, dtype=e.dtype, device=e.device)
        kept = torch.tensor(self.kept, device=e.device)[shuffle1.to(e.device)]
        coef[:, kept] = e * BLOCK_STD
        if not self.has_dc:
            coef[:, 0] = MID_GREY_DC
        img = block_idct(coef)
        img = F.interpolate(img, size=(CHIP, CHIP), mode="bilinear", align_corners=False)
        return img.expand(-1, 3, -1, -1)


class FrequencyService(nn.Module):
    """The service's recogniser: fixed inverse-DCT layer, then (fine-tuned) dlib-resnet."""

    def __init__(self, params: PPFRParams, recogniser: nn.Module) -> None:
        super().__init__()
        self.rebuild = InverseDCT(params)
        self.recogniser = recogniser

    def forward(self, slotted: torch.Tensor, shuffle1: torch.Tensor) -> torch.Tensor:
        return self.recogniser(self.rebuild(slotted, shuffle1))


class TrainedService:
    """What `Protected.utility` calls: templates for the key, reorder, rebuild, embed."""

    def __init__(self, net: FrequencyService, coef: torch.Tensor, params: PPFRParams,
                 info: dict[str, Any]) -> None:
        self.net, self.coef, self.params, self.info = net, coef, params, info
        self._templates: dict[str, SlotTemplates] = {}

    def templates(self, shuffle1: torch.Tensor) -> SlotTemplates:
        tag = ",".join(map(str, shuffle1.tolist()))
        if tag not in self._templates:
            self._templates = {tag: templates_for(self.coef, self.params, shuffle1.cpu())}
        return self._templates[tag]

    @torch.no_grad()
    def embed(self, wire: torch.Tensor, shuffle1: torch.Tensor, batch: int = 64
              ) -> torch.Tensor:
        slotted = self.templates(shuffle1).reorder(wire)
        return torch.cat([self._mirrored(slotted[i:i + batch], shuffle1)
                          for i in range(0, len(slotted), batch)])

    def _mirrored(self, slotted: torch.Tensor, shuffle1: torch.Tensor) -> torch.Tensor:
        """The mean of the unit embeddings of the rebuilt face and its mirror image (the same
        person). Measured on Olivetti people 20-39: 0.828 -> 0.849 verification accuracy."""
        img = self.net.rebuild(slotted, shuffle1)
        both = torch.cat([img, img.flip(-1)])
        emb = F.normalize(self.net.recogniser(both), dim=1)
        return (emb[:len(img)] + emb[len(img):]) / 2


def full_coefficients(kept: torch.Tensor, params: PPFRParams) -> torch.Tensor:
    """(N, 64, bh, bw) from the kept channels only (the others zero: masking never reads them)."""
    full = torch.zeros(kept.shape[0], 64, *kept.shape[2:], dtype=torch.float32)
    full[:, selected_channels(params)] = kept.float()
    return full


def load_service(path: str | Path, params: PPFRParams, device: torch.device | str
                 ) -> TrainedService:
    """A trained service from its checkpoint (weights_only): the network and the training
    faces' kept coefficients its slot templates come from."""
    from facepriv_core import checkpoints
    from facepriv_core.errors import CheckpointError
    from facepriv_core.models.dlib_resnet import load_dlib_resnet

    ckpt = checkpoints.load(path, CHECKPOINT_KIND, "PPFR-FD service checkpoint")
    if ckpt.get("defence_params") != wire_config(params):
        raise CheckpointError(f"the service in '{path}' was trained for PPFR-FD params "
                              f"{ckpt.get('defence_params')}, not {wire_config(params)}: train "
                              "one for these (`facepriv train ppfr_fd`) or drop adapter_path")
    student = load_dlib_resnet("cpu")
    student.load_state_dict(ckpt["state_dict"])
    net = FrequencyService(params, student).to(device).eval().requires_grad_(False)
    coef = full_coefficients(ckpt["template_coef"], params)
    info = {k: v for k, v in ckpt.items() if k not in ("state_dict", "template_coef")}
    return TrainedService(net, coef, params, {**info, "trained": True})


@functools.lru_cache(maxsize=2)
def _cached_service(path: str, mtime_ns: int, params: PPFRParams, device: str
                    ) -> TrainedService:
    """A service loaded once per checkpoint file version (path, mtime) and device."""
    return load_service(path, params, device)


@functools.lru_cache(maxsize=4)
def _cached_untrained(channels: int, device: str) -> tuple[torch.nn.Module, dict]:
    """The seeded untrained adapter: deterministic, so it is built once, not per call."""
    return untrained_adapter(channels, device)


def service_checkpoint(params: PPFRParams) -> Path | None:
    """The trained service to use: `adapter_path` when given (it must exist), else the one
    cached for this wire configuration, else None (not trained yet)."""
    if params.adapter_path is not None:
        from facepriv_core.checkpoints import regular_file

        return regular_file(params.adapter_path, "PPFR-FD service checkpoint")
    cached = cache_path(params)
    return cached if cached.is_file() else None


def service_trained(params: PPFRParams) -> bool:
    """Whether the authorised service for these params is trained (cached or given)."""
    return service_checkpoint(params) is not None


def utility_service(params: PPFRParams, device: torch.device
                    ) -> tuple[Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
                               dict[str, Any]]:
    """(embed(wire, shuffle1, recogniser), info) of the service: the trained one when there
    is one, else the seeded untrained adapter in front of the frozen dlib server part."""
    path = service_checkpoint(params)
    if path is not None:
        service = _cached_service(str(path.resolve()), path.stat().st_mtime_ns, params,
                                  str(device))
        return (lambda wire, shuffle1, _rec: service.embed(wire, shuffle1)), service.info
    adapter, info = _cached_untrained(wire_channels(params), str(device))

    def untrained(wire: torch.Tensor, _shuffle1: torch.Tensor, rec: Any) -> torch.Tensor:
        return rec.split(info["stage"])[1](adapter(wire))

    return untrained, info


def describe_service(info: dict[str, Any]) -> str:
    """One line for reports: which recogniser computes PPFR-FD's utility, trained or not."""
    if not info["trained"]:
        return ("UNTRAINED PPFR-FD service (seeded adapter, 0 training images, frozen dlib-resnet"
                f" after {info['stage']}): its utility means nothing; train it with "
                "`facepriv train ppfr_fd`")
    return (f"PPFR-FD service: slot assignment + inverse DCT + dlib-resnet fine-tuned on "
            f"{info['train_images']} faces ({info['data']}) for {info['steps']} steps "
            f"(held-out top-1 {info['val_top1']:.2f})")


__all__ = ["CHECKPOINT_KIND", "RECIPE_VERSION", "FrequencyService", "InverseDCT", "SlotTemplates",
           "TrainedService", "cache_path", "canonical_wires", "describe_service", "kept_ac",
           "load_service", "service_checkpoint", "service_trained", "templates_for",
           "utility_service", "wire_config"]
