"""Learned-decoder inversion (PMT "Level 1", RecFace-style): train a network wire -> face.

The attacker holds auxiliary faces of other people and the defence's public algorithm. It
protects those faces itself (fresh keys and noise for every batch, since the victim's secret
key is unknown), learns a decoder from the wires back to the faces, and applies it to the
wires it intercepted. Following Pu et al., "Facial Data Minimization: Shallow Model as Your
Privacy Filter" (Level 1), and the decoder attacks of RecFace-like evaluations.

Auxiliary faces never include the attacked people: every auxiliary face whose dlib descriptor
lies within the recogniser's same-person distance (0.6) of an attacked face is dropped. This
removes exact copies when the auxiliary set is the attacked dataset, and other photos of the
same people, without needing shared identity labels.

The decoder network, its training and cache are in train/decoder.py and the auxiliary faces in
train/aux_faces.py; this module is the attack. Trained decoders are cached per defence
configuration, named by a hash of the defence and its params, the decoder's training params
and the auxiliary faces excluded.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from pydantic import Field

from facepriv_core import models
from facepriv_core.attacks import _rules, register
from facepriv_core.attacks._common import preview, score_rows, stage_for
from facepriv_core.attacks.base import (
    Attack,
    AttackCancelled,
    AttackCase,
    AttackParams,
    AttackResult,
    CancelFn,
    ProgressEvent,
    ProgressFn,
    ThreatModel,
)
from facepriv_core.cancel import Cancelled
from facepriv_core.defences.base import Defence, Protected
from facepriv_core.train.aux_faces import load_aux, resolve_aux, same_people
from facepriv_core.train.decoder import (
    ARCHITECTURE,
    DEFAULT_RECIPE,
    cache_dir,
    config_digest,
    load_cached_decoder,
    save_decoder,
    train_decoder,
)
from facepriv_core.verdicts import Rule

# resolve_aux and train_decoder stay importable from here for code written before the move.
__all__ = ["DecoderInversion", "DecoderParams", "resolve_aux", "train_decoder"]


class DecoderParams(AttackParams):
    aux: str = Field(DEFAULT_RECIPE.aux,
                     description="auxiliary faces as a dataset spec, e.g. sfhq:PATH or "
                                 "folder:PATH (empty: this machine's SFHQ or LFW); "
                                 "must not be the attacked people")
    aux_limit: int = Field(DEFAULT_RECIPE.aux_limit, ge=2, le=100_000,
                           description="auxiliary faces to sample")
    epochs: int = Field(DEFAULT_RECIPE.epochs, ge=0, le=1000,
                        description="training epochs (0: untrained decoder)")
    batch_size: int = Field(DEFAULT_RECIPE.batch_size, ge=1, le=1024)
    lr: float = Field(DEFAULT_RECIPE.lr, gt=0.0, le=1.0, description="Adam learning rate")
    loss: Literal["l1", "l1+ssim"] = Field("l1+ssim", description="L1, or L1 + 0.5 (1 - SSIM)")
    width: int = Field(DEFAULT_RECIPE.width, ge=8, le=256,
                       description="channels of the first decoder block (16 trains on 2 CPU "
                                   "cores; 32+ on a GPU)")
    val_fraction: float = Field(DEFAULT_RECIPE.val_fraction, gt=0.0, lt=0.5,
                                description="share of auxiliary faces held out for validation")
    device: str = Field(DEFAULT_RECIPE.device,
                        description="training device: auto (GPU when present), cpu, cuda")
    use_cache: bool = Field(True, description="reuse and save trained decoders")


@register("decoder_inversion")
class DecoderInversion(Attack[DecoderParams]):
    title = "Learned decoder inversion (trained on auxiliary faces)"
    threat = ThreatModel(
        knows=("wire", "auxiliary_data", "defence_algorithm"),
        sentence="The server protects faces of other people with the defence's public "
                 "algorithm, learns to turn wires back into faces, and decodes what it received.",
    )
    applies_to = frozenset({"features", "embedding", "frequency", "image"})
    #: Training pairs come from protecting auxiliary faces with the public algorithm.
    needs = frozenset({"simulate"})
    Params = DecoderParams
    verdict_phrasing = _rules.RECONSTRUCTION

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        return _rules.reconstruction_rules(case, result)

    def applicable(self, protected: Protected, defence: Defence | None = None) -> str | None:
        reason = super().applicable(protected, defence)
        if reason:
            return reason
        if len(protected.wire_shape) not in (1, 3):
            return (f"{self.title} decodes (C, H, W) maps or vectors, not wires of shape "
                    f"{protected.wire_shape}")
        return None

    def run(self, case: AttackCase, params: DecoderParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        start = time.perf_counter()
        chips, keys, emb = load_aux(params.aux, params.aux_limit, case.seed, params.use_cache)
        drop = same_people(emb, case.original)
        if (~drop).sum() < 2:
            raise ValueError(f"only {(~drop).sum()} auxiliary faces are not the attacked people")
        n = case.original.shape[0]
        wire = case.protected.wire[:n].float()
        config = {"architecture": ARCHITECTURE, **case.defence.config(case.defence_params),
                  "decoder": params.model_dump(mode="json", exclude={"device", "use_cache"}),
                  "seed": case.seed, "excluded": sorted(k for k, d in zip(keys, drop,
                                                                          strict=True) if d)}
        path = cache_dir() / f"decoder-{config['defence']}-{config_digest(config)}.pt"
        dev = models.resolve_device(params.device)
        if params.use_cache and path.is_file():
            decoder, info = load_cached_decoder(path, params.width, dev)
            info = {**info, "cached": True}
        else:
            try:
                decoder, info = train_decoder(case.defence, case.defence_params, chips[~drop],
                                              params, seed=case.seed, preview_wire=wire[:1],
                                              progress=progress, cancel=cancel)
            except Cancelled as e:
                raise AttackCancelled("attack cancelled") from e
            info["cached"] = False
            if params.use_cache:
                save_decoder(path, decoder, info, config)
        with torch.no_grad():
            recon = torch.cat([decoder(wire[i:i + 64].to(dev)) for i in range(0, n, 64)]).cpu()
        if progress:
            progress(ProgressEvent(params.epochs, params.epochs, preview(recon), {},
                                   phase="decoding the wire"))
        kind = case.protected.wire_kind
        stage = ("embedding" if kind == "embedding" else
                 stage_for(case.protected.wire_shape, getattr(case.defence_params, "stage", None))
                 if kind == "features" else None)
        rows = score_rows(case, recon, stage)
        return AttackResult(
            attack=self.name, threat_model=self.threat, per_image=rows, reconstructions=recon,
            details={**info, "stage": stage, "aux_faces": int((~drop).sum()),
                     "aux_excluded": int(drop.sum()), "checkpoint": str(path),
                     "seconds": time.perf_counter() - start},
        )
