"""Threat scenarios of the identity attack: what the attacker's gallery and recogniser are.

Evaluations that match protected faces against clean photos (the *naive* attacker) overstate
privacy (Todt, Hanisch, Strufe, "A False Sense of Privacy: Towards a Reliable Evaluation
Methodology for the Anonymization of Biometric Data", PETS 2024): an attacker who knows the
public algorithm protects its own gallery the same way (*parrot*) and can adapt its recogniser
to protected faces (*retrained*).

* naive: the gallery is the clean originals;
* parrot: the gallery is the originals protected by the defence's public algorithm and params
  under the attacker's own key and randomness (`Defence.simulate`): never the victim's key;
* retrained: parrot, and each recogniser gets a linear head trained with a supervised
  contrastive loss on protected augmented views of auxiliary faces of other people (faces
  that dlib matches to any victim are dropped), applied to probes and gallery alike.

In parrot and retrained a probe is never compared with its own source photo: protected twice
by a deterministic transform (blur, pixelation) the two would be identical, which says
nothing about recognising the person. Probes whose person has no other photo score NaN there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from facepriv_core.attacks.base import AttackCase, ThreatModel, missing_capabilities
from facepriv_core.errors import UsageError

Scenario = Literal["naive", "parrot", "retrained"]
Embed = Callable[[Any, torch.Tensor], np.ndarray]

THREATS: dict[str, ThreatModel] = {
    "naive": ThreatModel(
        knows=("wire", "gallery"),
        sentence="The server compares what it receives with clean enrolled photos of the "
                 "people, using the authorised and other off-the-shelf recognisers."),
    "parrot": ThreatModel(
        knows=("wire", "gallery", "defence_algorithm"),
        sentence="The server protects its enrolled photos with the same public defence and "
                 "params (its own key) and matches what it receives against them."),
    "retrained": ThreatModel(
        knows=("wire", "gallery", "defence_algorithm", "auxiliary_data"),
        sentence="The server protects its gallery like the parrot and adapts each recogniser "
                 "to protected faces with a head trained on protected faces of other people."),
}
#: Seed offset of the attacker's own generator: its keys and noise never repeat the victim's.
ATTACKER_SEED_OFFSET = 7919


def gallery_exclusion(ids: np.ndarray) -> np.ndarray:
    """(N, N) mask hiding each probe's own original where its person has another photo, so
    identification is against other enrolled photos when the case allows it."""
    ids = np.asarray(ids)
    same = ids[:, None] == ids[None, :]
    has_other = same.sum(axis=1) >= 2
    return np.eye(len(ids), dtype=bool) & has_other[:, None]


def own_photo_mask(ids: np.ndarray) -> np.ndarray:
    """(N, N) mask hiding every probe's own source photo from the gallery."""
    return np.eye(len(ids), dtype=bool)


def partners(ids: np.ndarray) -> np.ndarray:
    """Per probe, the index of another photo of the same person (the next one in order,
    cyclically), or -1 when there is none: the pair a verification compares."""
    ids = np.asarray(ids)
    out = np.full(len(ids), -1)
    for person in np.unique(ids):
        members = np.flatnonzero(ids == person)
        if len(members) > 1:
            out[members] = np.roll(members, -1)
    return out


def attacker_generator(case: AttackCase, offset: int = 0) -> torch.Generator:
    gen = torch.Generator(device=case.device)
    return gen.manual_seed(case.seed + ATTACKER_SEED_OFFSET + offset)


def require(case: AttackCase, scenario: str, title: str) -> None:
    """Raise UsageError when `scenario` cannot run on this case."""
    if scenario == "naive":
        return
    if case.protected.wire_kind != "image":
        raise UsageError(f"identity scenario '{scenario}' re-protects the gallery and embeds "
                         f"it with the attacker's recognisers, which needs an image wire, not "
                         f"{case.protected.wire_kind}; use scenario=naive")
    reason = missing_capabilities(title, frozenset({"simulate"}), case.defence)
    if reason:
        raise UsageError(reason)


def protected_gallery(case: AttackCase) -> torch.Tensor:
    """The originals protected by the attacker with the public params and its own key."""
    sim = case.defence.simulate(case.original, case.defence_params, attacker_generator(case))
    image = sim.image if sim.image is not None else sim.wire
    return image[: case.original.shape[0]].float()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random view of faces (N, 3, H, W): small rotation, scale and shift, a horizontal flip,
    brightness and contrast jitter and sometimes greyscale, i.e. a few of the ways two photos
    of one person differ."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.92, 1.08)
    tx, ty = uniform(-0.06, 0.06), uniform(-0.06, 0.06)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(0.85, 1.15).view(-1, 1, 1, 1).to(x)
    bright = uniform(-0.08, 0.08).view(-1, 1, 1, 1).to(x)
    y = (y - mean) * contrast + mean + bright
    grey = (torch.rand(n, generator=gen) < 0.3).view(-1, 1, 1, 1).to(x)
    luma = (0.299 * y[:, :1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:]).expand_as(y)
    return (grey * luma + (1 - grey) * y).clamp(0, 1)


class AdaptedHead(torch.nn.Module):
    """e -> normalise(e + A e): a linear correction of a frozen recogniser's embedding,
    starting from the identity (A = 0), so an untrained head changes nothing."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.delta = torch.nn.Parameter(torch.zeros(dim, dim))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        e = F.normalize(e, dim=1)
        return F.normalize(e + e @ self.delta.T, dim=1)


def train_head(embeddings: np.ndarray, labels: np.ndarray, *, steps: int, lr: float,
               temperature: float, weight_decay: float, seed: int) -> tuple[AdaptedHead, float]:
    """Fit an AdaptedHead with the supervised contrastive loss (Khosla et al., NeurIPS 2020):
    views of one auxiliary face attract, views of different faces repel. Full batch (the
    embeddings are precomputed), an L2 pull of A towards 0. Returns the head, final loss."""
    torch.manual_seed(seed)
    e = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels))
    head = AdaptedHead(e.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    has_pos = same.any(dim=1)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        z = head(e)
        logits = (z @ z.T) / temperature
        logits = logits.masked_fill(torch.eye(len(y), dtype=torch.bool), float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        pos = (log_prob.masked_fill(~same, 0).sum(dim=1) / same.sum(dim=1).clamp_min(1))
        loss = -pos[has_pos].mean() + weight_decay * head.delta.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    return head, float(loss.detach())


@dataclass
class AuxViews:
    """Protected augmented views of auxiliary faces, and which face each view comes from."""

    images: torch.Tensor
    labels: np.ndarray
    faces: int
    excluded: int
    info: dict[str, Any] = field(default_factory=dict)


def aux_views(case: AttackCase, spec: str, limit: int, views: int) -> AuxViews:
    """`views` augmented views of up to `limit` auxiliary faces, each protected with the
    attacker's own key; faces dlib matches to a victim are dropped."""
    from facepriv_core.faces import chips_to_tensor
    from facepriv_core.train.aux_faces import load_aux, resolve_aux, same_people

    spec = resolve_aux(spec, "identity scenario 'retrained'")
    chips, _, emb = load_aux(spec, limit, case.seed)
    drop = same_people(emb, case.original)
    keep = chips[~drop]
    if len(keep) < 4:
        raise UsageError(f"only {len(keep)} auxiliary faces are not the attacked people; "
                         "give more with aux_limit or another aux dataset")
    x = chips_to_tensor(keep)
    gen = torch.Generator().manual_seed(case.seed + 1)
    images, labels = [], []
    for v in range(views):
        view = augment(x, gen).to(case.device)
        sim = case.defence.simulate(view, case.defence_params, attacker_generator(case, 1 + v))
        img = sim.image if sim.image is not None else sim.wire
        images.append(img[: len(view)].float().cpu())
        labels.append(np.arange(len(keep)))
    return AuxViews(torch.cat(images), np.concatenate(labels), len(keep), int(drop.sum()))


class ScenarioGallery:
    """Per recogniser: the probe and gallery embeddings, the gallery entries each probe may
    not match and each probe's verification partner, under one scenario."""

    def __init__(self, case: AttackCase, scenario: str, embed: Embed, device: torch.device, *,
                 aux: str = "", aux_limit: int = 200, views: int = 4,
                 head_steps: int = 300) -> None:
        self.case, self.scenario, self.embed, self.device = case, scenario, embed, device
        n = case.original.shape[0]
        ids = case.identities if case.identities is not None else np.arange(n)
        self.ids = np.asarray(ids)
        self.details: dict[str, Any] = {"scenario": scenario}
        self._gallery: torch.Tensor | None = None
        self._views: AuxViews | None = None
        self.aux, self.aux_limit, self.views, self.head_steps = aux, aux_limit, views, head_steps
        if scenario == "naive":
            self.exclude = gallery_exclusion(self.ids)
            self.partner = np.arange(n)
        else:
            self.exclude = own_photo_mask(self.ids)
            self.partner = partners(self.ids)
            self._gallery = protected_gallery(case)
            self.details["gallery"] = ("the originals protected by the attacker (public "
                                       "params, its own key); a probe never matches its own "
                                       "source photo")
        if scenario == "retrained":
            self._views = aux_views(case, aux, aux_limit, views)
            self.details.update(aux_faces=self._views.faces, aux_excluded=self._views.excluded,
                                views=views, heads={})

    def embeddings(self, name: str, model: Any, probe: np.ndarray, batch: int = 32
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(probe, gallery) embeddings of recogniser `name` under the scenario."""
        if self._gallery is None:
            return probe, self.case.original_embedding(name, batch).float().cpu().numpy()
        gallery = self.embed(model, self._gallery.to(self.device))
        if self._views is None:
            return probe, gallery
        train = self.embed(model, self._views.images.to(self.device))
        head, loss = train_head(train, self._views.labels, steps=self.head_steps, lr=1e-3,
                                temperature=0.1, weight_decay=1e-3, seed=self.case.seed)
        self.details["heads"][name] = {"final_loss": loss,
                                       "correction_norm": float(head.delta.detach().norm())}
        with torch.no_grad():
            return (head(torch.from_numpy(probe).float()).numpy(),
                    head(torch.from_numpy(gallery).float()).numpy())

    def pair_cosine(self, probe: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Per probe, the cosine to its partner's gallery entry (NaN without a partner)."""
        return pair_cosine(probe, gallery, self.partner)


def pair_cosine(probe: np.ndarray, gallery: np.ndarray, partner: np.ndarray,
                chunk: int = 4096) -> np.ndarray:
    """Per probe, the cosine to gallery entry `partner[i]` (NaN where it is -1); `chunk`
    probes at a time, so a 13k-face audit's 1024-d embeddings are not copied whole."""
    parts = []
    for start in range(0, len(probe), chunk):
        pr = probe[start:start + chunk]
        ga = gallery[np.maximum(partner[start:start + chunk], 0)]
        p = pr / np.maximum(np.linalg.norm(pr, axis=1, keepdims=True), 1e-12)
        g = ga / np.maximum(np.linalg.norm(ga, axis=1, keepdims=True), 1e-12)
        parts.append(np.sum(p * g, axis=1))
    cos = np.concatenate(parts) if parts else np.zeros(0, dtype=np.result_type(probe))
    return np.where(partner >= 0, cos, np.nan)

