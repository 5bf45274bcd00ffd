"""PPFR-FD's authorised service: recognise faces from the masked frequency wire.

Design, from measurements on Olivetti (all 40 people held out; clean dlib-resnet 0.985):

* Who knows what. In Wang et al. (AAAI 2022) the recogniser is trained on wires the system's
  own masking makes, with its fixed Shuffle1; Shuffle2 is drawn afresh for every image and
  known to nobody. So the service holds Shuffle1 (the key; an outside attacker does not, see
  attacks/ppfr_fd_whitebox.py) and must cope with Shuffle2 per image.
* Shuffle2: channel identity survives the masking. Self-normalisation is an affine map per
  position, so each wire channel keeps its spatial pattern over the aligned face; a diagonal
  Gaussian per canonical slot (mean and variance at each of the 14 x 14 positions, from
  training faces) scores every wire channel against every slot, and an optimal assignment
  (Hungarian) puts the channels back in order. Measured: 87 % of channels placed right.
  Learning order invariance instead (the earlier adapter, a channel-set encoder feeding
  dlib's level4) reached cosine 0.88 to the clean embedding with rank-1 at chance.
* A fixed inverse-DCT layer: with the order back and Shuffle1 known, the mixing
  (E_j + E_{j+1}) / 2 is inverted by its pseudo-inverse, each block's coefficients are
  re-standardised, the DC channel is set to mid grey, and the inverse block DCT rebuilds a
  112 x 112 high-pass face. Frozen dlib-resnet on that image already verifies Olivetti at
  0.79 (0.76 with the assignment's errors): the image keeps identity, unlike the learnt map.
* The templates are domain-specific: learnt on SFHQ's dlib chips they place only 51 % of
  Olivetti's channels (tighter 64 px crops, other lighting); from a zoomed (0.8) SFHQ copy 70 %,
  from 20 Olivetti people 82 % on the 20 others. So the templates and the training use SFHQ
  (zoomed copies) and, when Olivetti is on the machine, its people 0-19; the service records
  them (`trained_people`) and `verify --defence` leaves their faces out, so Olivetti figures
  are on people 20-39, never seen.
* dlib-resnet, initialised from its pretrained weights, fine-tuned so its embedding of the
  rebuilt image reproduces the clean chip's embedding (teacher-student distillation: 1 -
  cosine, plus an in-batch contrastive term, one face per person, since dlib embeddings of two
  different people already have cosine ~0.84), with flips, tighter crops and random
  down-scaling, and a fresh random Shuffle1 at every step: the network then serves any key
  (only the templates depend on the key, recomputed from the stored training coefficients in
  a fraction of a second), which matters because client keys are fresh OS-entropy secrets. One
  training per wire configuration, cached by that configuration's hash.

Everything an insider holding Shuffle1 can do is what this service does: it rebuilds a
recognisable high-pass face internally. That is a property of PPFR-FD, recorded in
docs/reproduction.md; the white-box attack (no Shuffle1) still fails.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from facepriv_core.cache import cache_root
from facepriv_core.cancel import Cancel
from facepriv_core.defences.ppfr_fd import (
    FACE_SIZE,
    PPFRParams,
    block_dct,
    block_idct,
    mask_coefficients,
    selected_channels,
    self_normalise,
    shuffle2_permutations,
    to_grey112,
    wire_channels,
)
from facepriv_core.train.aux_faces import load_aux, resolve_aux
from facepriv_core.train.decoder import config_digest
from facepriv_core.train.loop import TrainProgress, save_checkpoint, train_loop

CHECKPOINT_KIND = "ppfr_fd_service"
#: Bump when the recipe changes: cached services of an older recipe are then retrained.
RECIPE_VERSION = 1
#: Defence params the service depends on (shape and content of the wire). Never the seed.
WIRE_PARAMS = ("channels", "selection", "drop_dc", "mix")
CHIP = 150
#: Orthonormal 8x8 DCT: the DC coefficient of a block of constant value v is 8 v.
MID_GREY_DC = 8 * 0.5
#: Mean spread of a block's kept AC coefficients (pixel scale [0, 1]) on SFHQ, to rescale the
#: re-standardised coefficients to image contrast.
BLOCK_STD = 0.07
VAR_FLOOR = 1e-3
TEMPERATURE = 0.05
CONTRAST_WEIGHT = 0.05


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
    """Per canonical slot, a diagonal Gaussian over the 14 x 14 positions (from faces' wires)."""

    def __init__(self, canonical: torch.Tensor) -> None:
        flat = canonical.flatten(2).double()  # (N, C, P)
        self.mean = flat.mean(dim=0)  # (C, P)
        self.inv_var = 1 / (flat.var(dim=0) + VAR_FLOOR)
        self.log_var = (-self.inv_var.log()).sum(dim=1)  # (C,)

    def costs(self, wire: torch.Tensor) -> torch.Tensor:
        """(N, C_wire, C_slot) negative log-likelihood of wire channel c in slot k."""
        w = wire.flatten(2).double().cpu()
        quad = (w.pow(2) @ self.inv_var.T - 2 * w @ (self.mean * self.inv_var).T
                + (self.mean.pow(2) * self.inv_var).sum(dim=1))
        return quad + self.log_var

    def reorder(self, wire: torch.Tensor) -> torch.Tensor:
        """The wire with its channels put back into slot order (Hungarian per image)."""
        costs = self.costs(wire).numpy()
        slots = np.empty(costs.shape[:2], dtype=np.int64)
        for i, cost in enumerate(costs):
            rows, cols = linear_sum_assignment(cost)
            slots[i, rows] = cols
        index = torch.from_numpy(np.argsort(slots, axis=1)).to(wire.device)
        rows_ix = torch.arange(wire.shape[0], device=wire.device).unsqueeze(1)
        return wire[rows_ix, index]


def templates_for(coef: torch.Tensor, params: PPFRParams, shuffle1: torch.Tensor
                  ) -> SlotTemplates:
    return SlotTemplates(canonical_wires(coef, params, shuffle1))


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


def validation_key(n: int, seed: int) -> torch.Tensor:
    """A Shuffle1 the training never drew (its own generator), for the held-out figures."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + 12345))


def zoom(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The central `scale` part of chips, resized back: a tighter crop of the same face."""
    n = x.shape[-1]
    side = round(n * scale)
    off = (n - side) // 2
    return F.interpolate(x[..., off:off + side, off:off + side], size=(n, n), mode="bilinear",
                         antialias=True, align_corners=False)


def _views(x: torch.Tensor, gen: torch.Generator, zoom_range: tuple[float, float]
           ) -> torch.Tensor:
    """Random flips and tighter crops (dataset crops are framed tighter than dlib chips)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    lo, hi = zoom_range
    return torch.cat([zoom(img, lo + (hi - lo) * float(torch.rand(1, generator=gen)))
                      for img in x.split(1)])


def _degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random down-scaling (to 56-150 px and back): the student sees other resolutions."""
    out = []
    for img in x.split(1):
        size = int(torch.randint(56, CHIP + 1, (1,), generator=gen))
        if size < CHIP:
            img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)
            img = F.interpolate(img, size=(CHIP, CHIP), mode="bilinear", align_corners=False)
        out.append(img)
    return torch.cat(out)


def _olivetti_people(people: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Chips and identities of Olivetti's first `people` people when Olivetti is here."""
    from facepriv_core import data_sources, datasets

    source = data_sources.find("olivetti")
    if source is None or people <= 0:
        return None
    ds = datasets.load(source.spec)
    ds = ds.subset(np.flatnonzero(ds.identities < people))
    return datasets.align_dataset(ds).chips, ds.identities


def _training_faces(data: str | np.ndarray | None, max_images: int | None
                    ) -> tuple[np.ndarray, np.ndarray, str]:
    """Aligned chips and clean dlib embeddings of the training faces: a dataset spec (aligned
    once, cached), this machine's default auxiliary set when None, or uint8 chips."""
    if isinstance(data, np.ndarray):
        from facepriv_core import models
        from facepriv_core.faces import chips_to_tensor

        chips = data[:max_images] if max_images else data
        net = models.get("dlib-resnet", "cpu")
        with torch.no_grad():
            emb = torch.cat([net(chips_to_tensor(chips[i:i + 64]))
                             for i in range(0, len(chips), 64)]).numpy()
        return chips, emb, f"{len(chips)} given chips"
    spec = resolve_aux(data or "", "PPFR-FD's service training")
    chips, _, emb = load_aux(spec, max_images or 100_000)
    return chips, emb, spec


def train_service(
    data: str | np.ndarray | None = None,
    params: PPFRParams | None = None,
    *,
    steps: int = 60,
    batch_size: int = 24,
    lr: float = 3e-5,
    val_images: int = 60,
    max_images: int | None = None,
    olivetti_people: int = 20,
    device: str | torch.device | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: TrainProgress | None = None,
    cancel: Cancel | None = None,
) -> dict[str, Any]:
    """Fine-tune dlib-resnet behind the inverse-DCT layer; return (and save) the checkpoint.

    data: a dataset spec of other people's faces (default: this machine's SFHQ); the last
    `val_images` (seeded shuffle) are held out for the checkpoint's own figures. Saved to
    `out`, or to this wire configuration's cache path when `out` is None.
    """
    from facepriv_core import models
    from facepriv_core.faces import chips_to_tensor

    params = params or PPFRParams()
    dev = models.resolve_device(device)
    chips, teacher, source = _training_faces(data, max_images)
    order = np.random.default_rng(seed).permutation(len(chips))
    if len(order) <= val_images + batch_size:
        raise ValueError(f"{len(order)} faces are too few for {val_images} held-out ones")
    tr_idx, val_idx = order[:-val_images], order[-val_images:]
    x_all = chips_to_tensor(chips, "cpu")
    teacher_t = torch.from_numpy(teacher).float()
    teacher_net = models.get("dlib-resnet", dev)
    extra = _olivetti_people(olivetti_people)
    x_people = chips_to_tensor(extra[0], "cpu") if extra is not None else None
    people = extra[1] if extra is not None else np.zeros(0, dtype=int)

    from facepriv_core.models.dlib_resnet import load_dlib_resnet

    student = load_dlib_resnet(dev)  # a fresh copy: the zoo's shared one stays pretrained
    net = FrequencyService(params, student).to(dev)
    net.train().requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    n_ac = len(kept_ac(params))
    template_faces = [zoom(x_all[tr_idx], 0.8)] + ([x_people] if x_people is not None else [])
    coef_tr = block_dct(to_grey112(torch.cat(template_faces)))
    n_people = len(np.unique(people))

    def batches() -> Any:
        rng = np.random.default_rng(seed + 1)
        for _ in range(steps):
            k = min(n_people, batch_size // 2)
            picked: np.ndarray = (rng.choice(np.unique(people), size=k, replace=False)
                                  if k else np.zeros(0, dtype=int))
            own = [int(rng.choice(np.flatnonzero(people == p))) for p in picked]
            yield rng.choice(tr_idx, size=batch_size - k, replace=False), np.asarray(own, int)

    def step(batch: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
        idx, own = batch
        shuffle1 = torch.randperm(n_ac, generator=gen)
        templates = templates_for(coef_tr, params, shuffle1)
        x = _views(x_all[idx], gen, (0.7, 1.0))
        if len(own) and x_people is not None:
            x = torch.cat([x, _views(x_people[own], gen, (1.0, 1.0))])
        with torch.no_grad():
            target = teacher_net(x.to(dev))
            coef = block_dct(to_grey112(_degrade(x, gen)))
            perms = shuffle2_permutations(len(x), wire_channels(params), gen)
            wire = mask_coefficients(coef, params, shuffle1, perms)
            slotted = templates.reorder(wire)
        pred = net(slotted.to(dev), shuffle1)
        # 1 - cosine pulls each face to its own clean embedding; the contrastive term keeps it
        # nearer its own than the batch's other people's (dlib cosines between people are
        # ~0.84, so cosine alone can rise while identity is lost). One face per person.
        logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / TEMPERATURE
        contrast = F.cross_entropy(logits, torch.arange(len(x), device=dev))
        return 1 - logits.diagonal().mean() * TEMPERATURE + CONTRAST_WEIGHT * contrast

    before = evaluate(net.eval(), x_all[val_idx], teacher_t[val_idx], params, coef_tr,
                      validation_key(n_ac, seed))
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    started = time.monotonic()
    result = train_loop(batches(), step, opt, total=steps, scheduler=sched, progress=progress,
                        cancel=cancel)
    net.eval().requires_grad_(False)
    val = evaluate(net, x_all[val_idx], teacher_t[val_idx], params,
                   coef_tr, validation_key(n_ac, seed))
    ckpt = {
        "kind": CHECKPOINT_KIND,
        "recipe": RECIPE_VERSION,
        "defence_params": wire_config(params),
        "state_dict": {k: v.detach().cpu() for k, v in student.state_dict().items()},
        # the kept coefficients of the training faces: templates for any key, no data needed
        "template_coef": coef_tr[:, selected_channels(params)].half(),
        "olivetti_people": n_people,
        "data": source,
        "train_images": len(tr_idx) + len(people),
        "trained_people": {"olivetti": sorted(int(i) for i in np.unique(people))},
        "val_images": len(val_idx),
        "steps": result.steps,
        "batch_size": batch_size,
        "cancelled": result.cancelled,
        "last_loss": result.last_loss,
        "val_cosine": val["cosine"],
        "val_top1": val["top1"],
        "val_cosine_pretrained": before["cosine"],
        "val_top1_pretrained": before["top1"],
        "seconds": time.monotonic() - started,
        "device": str(dev),
    }
    if not result.cancelled:
        save_checkpoint(ckpt, out if out is not None else cache_path(params))
    return ckpt


@torch.no_grad()
def evaluate(net: FrequencyService, x: torch.Tensor, targets: torch.Tensor, params: PPFRParams,
             coef_tr: torch.Tensor, shuffle1: torch.Tensor, seed: int = 1) -> dict[str, float]:
    """Held-out faces, one Shuffle2 each, a key never trained on: mean cosine to the clean
    embedding and top-1 (nearest clean embedding among these faces is the face's own)."""
    gen = torch.Generator().manual_seed(seed)
    dev = next(net.parameters()).device
    wire = mask_coefficients(block_dct(to_grey112(x)), params, shuffle1,
                             shuffle2_permutations(len(x), wire_channels(params), gen))
    slotted = templates_for(coef_tr, params, shuffle1).reorder(wire)
    emb = torch.cat([net(slotted[i:i + 64].to(dev), shuffle1)
                     for i in range(0, len(x), 64)]).cpu()
    nearest = torch.cdist(emb, targets).argmin(dim=1)
    return {"cosine": float(F.cosine_similarity(emb, targets, dim=1).mean()),
            "top1": float((nearest == torch.arange(len(x))).float().mean())}


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


__all__ = ["FACE_SIZE", "FrequencyService", "InverseDCT", "SlotTemplates", "TrainedService",
           "cache_path", "load_service", "train_service"]
