"""Identity and data abuse: do recognisers still tell who is in the protected face?

Pairwise, a protected face "matches" its person when its cosine to the original's embedding
clears the recogniser's verification threshold. In a gallery, it is identified when its
nearest enrolled photo (rank 1) is of the same person. The authorised recogniser
(dlib-resnet) and every other available one are tried on image wires: an unauthorised
recogniser that still matches means the defence does not stop data abuse. On feature and
embedding wires only the authorised service's own embedding (`Protected.utility`) exists.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from facepriv_core import datasets, metrics, models, verification
from facepriv_core.attacks import _rules, register, scenarios
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
    check_cancel,
)
from facepriv_core.embedding import embed_numpy
from facepriv_core.verdicts import Rule

AUTHORISED = "dlib-resnet"
#: Cosine thresholds fitted (LFW 10-fold protocol, verification.evaluate_scores) on all 3600
#: Olivetti pairs of clean 150 chips: accuracy 0.984, AUC 0.999 for both models.
DEFAULT_THRESHOLDS = {"dlib-resnet": 0.921, "dlib-native": 0.921}
#: Same-person pairs among the case's originals needed to fit a threshold on them instead.
MIN_SAME_PAIRS = 10
#: Same-person pairs (and as many different-person ones) a threshold is fitted on at most,
#: sampled with the seed when there are more: 16 people in 13k faces make 5M same pairs.
MAX_THRESHOLD_PAIRS = 20_000


class IdentityParams(AttackParams):
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0,
        description="cosine threshold for the authorised recogniser; empty: fit it on the "
                    "case's clean same/different pairs, else the Olivetti default")
    other_recognisers: bool = Field(
        True, description="also try every other available recogniser (image wires only)")
    recognisers: str = Field(
        "", description="comma-separated recognisers to use instead of the default (the "
                        "authorised one and every other available one except duplicates "
                        "such as dlib-native); image wires only")
    batch_size: int = Field(32, ge=1, le=512, description="faces per forward pass")
    scenario: Literal["naive", "parrot", "retrained"] = Field(
        "naive", description="the attacker's gallery: 'naive' clean photos; 'parrot' photos "
                             "protected like the probe (public params, the attacker's own "
                             "key); 'retrained' parrot plus recognisers adapted to protected "
                             "faces of auxiliary people (needs aux)")
    aux: str = Field("", description="'retrained': auxiliary faces of other people, a dataset "
                                     "spec such as sfhq:/path/to/sfhq")
    aux_limit: int = Field(200, ge=4, le=5000,
                           description="'retrained': at most this many auxiliary faces")
    views: int = Field(4, ge=2, le=16, description="'retrained': protected augmented views "
                                                  "per auxiliary face")
    head_steps: int = Field(300, ge=1, le=5000,
                            description="'retrained': training steps of each adapted head")


#: Available recognisers left out unless named, as duplicates of a default one: dlib-native
#: is dlib-resnet's network (numbers identical to 4e-7) at 4x the cost per face; faceres-deep
#: is faceres's architecture and training lineage with other weights (Olivetti accuracy
#: 0.965 vs 0.977, model card) at the same 1.14 GFLOP per face, a second opinion from the
#: same family that costs a quarter of the default identity attack.
NOT_BY_DEFAULT = frozenset({"dlib-native", "faceres-deep"})


def recogniser_names(params: Any, is_image: bool) -> list[str]:
    """The recognisers an identity attack runs: the authorised one first."""
    if not is_image:
        return [AUTHORISED]
    if params.recognisers.strip():
        asked = [n.strip() for n in params.recognisers.split(",") if n.strip()]
        return [AUTHORISED] + [n for n in dict.fromkeys(asked) if n != AUTHORISED]
    names = [AUTHORISED]
    if params.other_recognisers:
        names += [n for n in models.available("recognition")
                  if n != AUTHORISED and n not in NOT_BY_DEFAULT]
    return names


def fit_threshold(name: str, clean: np.ndarray, ids: np.ndarray | None,
                  model: Any = None) -> tuple[float | None, str]:
    """(threshold, where it came from) for recogniser `name` given clean embeddings; the
    fallback is the model's own `verification_threshold` (from its card) or the dlib one."""
    if ids is not None:
        counts = np.unique(ids, return_counts=True)[1]
        if len(counts) >= 2 and int(np.sum(counts * (counts - 1) // 2)) >= MIN_SAME_PAIRS:
            pairs, same = datasets.make_pairs(ids, pairs_per_label=MAX_THRESHOLD_PAIRS)
            scores = verification.pair_cosine(clean, pairs)
            return verification.best_threshold(scores, same), f"fitted on {len(pairs)} clean pairs"
    default = DEFAULT_THRESHOLDS.get(name, getattr(model, "verification_threshold", None))
    if default is not None:
        return default, "default (fitted on Olivetti)"
    return None, "no threshold known: give identities with repeated people to fit one"


def own_photo_hidden(ids: np.ndarray) -> np.ndarray:
    """(N,) bool: the diagonal of `gallery_exclusion` (a probe's own original is hidden where
    its person has another photo), without the N x N matrix."""
    ids = np.asarray(ids)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()] >= 2


#: Probes matched against the gallery at once: a (BLOCK, N) float64 similarity block.
RANK1_BLOCK = 1024


def rank1_in_blocks(probe: np.ndarray, gallery: np.ndarray, ids: np.ndarray,
                    hidden: np.ndarray, block: int = RANK1_BLOCK,
                    cancel: CancelFn | None = None) -> np.ndarray:
    """`metrics.rank1_hits` of every probe against the whole gallery, `block` probes at a
    time, each probe's own original hidden where `hidden` says so (`scenarios.gallery_exclusion`).
    Memory is block x N, not N x N (13k faces: 100 MB instead of 1.4 GB): the gallery is
    normalised once, and each block's own originals are hidden in place (the same numbers
    as `metrics.rank1_hits` with the exclusion mask, without the mask and its copy)."""
    n = len(probe)
    ids = np.asarray(ids)
    g = metrics.unit_rows(gallery)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, block):
        check_cancel(cancel)
        end = min(n, start + block)
        sims = metrics.unit_rows(probe[start:end]) @ g.T
        own = np.flatnonzero(hidden[start:end])
        sims[own, start + own] = -np.inf
        best = np.argmax(sims, axis=1)
        hits = (ids[best] == ids[start:end]).astype(np.float64)
        out[start:end] = np.where(np.isneginf(sims[np.arange(end - start), best]), np.nan,
                                  hits)
        del sims  # before the next block's is made: one block alive at a time
    return out


def _score(rows: list[dict[str, float]], name: str, cos: np.ndarray, t: float | None,
           hits: np.ndarray) -> None:
    """Add recogniser `name`'s per-probe cosine, match (at threshold `t`) and rank-1 hit."""
    for i, row in enumerate(rows):
        row[f"cosine@{name}"] = float(cos[i])
        row[f"match@{name}"] = (float(cos[i] >= t) if t is not None and np.isfinite(cos[i])
                                else float("nan"))
        row[f"rank1@{name}"] = float(hits[i])


def _threshold(name: str, params: IdentityParams, gallery: np.ndarray,
               ids: np.ndarray | None, device: Any) -> tuple[float | None, str]:
    """(threshold, where it came from) for recogniser `name`: the one given for the
    authorised recogniser, else fitted on the gallery's pairs (`fit_threshold`; the zoo's
    model, loaded once per process, gives the fallback)."""
    if name == AUTHORISED and params.threshold is not None:
        return params.threshold, "given"
    t, source = fit_threshold(name, gallery, ids, models.get(name, device))
    if params.scenario != "naive":
        source = source.replace("clean", "protected gallery")
    return t, source


def _headline(rows: list[dict[str, float]]) -> None:
    """The authorised recogniser's columns as the rows' headline metrics."""
    for row in rows:
        row["cosine"] = row[f"cosine@{AUTHORISED}"]
        row["match_rate"] = row[f"match@{AUTHORISED}"]
        row["rank1"] = row[f"rank1@{AUTHORISED}"]


@register("identity")
class IdentityAbuse(Attack[IdentityParams]):
    title = "Identity matching and data abuse"
    threat = ThreatModel(
        knows=("wire", "gallery"),
        sentence="The server compares what it receives with enrolled photos of the people, "
                 "using the authorised and other off-the-shelf recognisers.")
    applies_to = frozenset({"image", "features", "embedding"})
    Params = IdentityParams
    verdict_phrasing = _rules.IDENTITY

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        return _rules.identity_rules(case, result)

    def streams(self, params: IdentityParams) -> bool:
        """Naive scenario: two-phase. Each shard gives its probes' and originals' embeddings
        per recogniser (a few hundred floats per face); `finish` fits the thresholds and
        matches every probe against the whole gallery in blocks of probes, so no N x N
        matrix is held. Parrot and retrained protect the gallery with the attacker's own
        generator in one draw (and retrained trains on it): whole set."""
        return params.scenario == "naive"

    def _probe(self, case: AttackCase, name: str, params: IdentityParams,
               cancel: CancelFn | None) -> np.ndarray:
        """What recogniser `name` makes of the wire: its embedding of a protected image, else
        the authorised service's embedding of a feature or embedding wire."""
        prot = case.protected
        if prot.wire_kind == "image" and name in case.wire_embeddings:
            return case.wire_embeddings[name].float().cpu().numpy()
        model = models.get(name, self.device)
        if prot.wire_kind == "image":
            image = prot.image if prot.image is not None else prot.wire
            return embed_numpy(model, image[:case.original.shape[0]], params.batch_size,
                               self.device, cancel=cancel, error=AttackCancelled)
        with torch.no_grad():
            return prot.utility(model).float().cpu().numpy()

    def run_shard(self, case: AttackCase, params: IdentityParams,
                  cancel: CancelFn | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{recogniser: (probe, gallery)} float32 embeddings of this shard's faces."""
        out = {}
        for name in recogniser_names(params, case.protected.wire_kind == "image"):
            check_cancel(cancel)
            probe = self._probe(case, name, params, cancel)
            gallery = case.original_embedding(name, params.batch_size).float().cpu().numpy()
            out[name] = (probe, gallery)
        return out

    def finish(self, case: AttackCase, parts: list[Any], params: IdentityParams,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None
               ) -> AttackResult:
        """The naive attack over the whole set from its shards' embeddings."""

        names = list(parts[0])
        n = sum(len(part[names[0]][0]) for part in parts)
        ids = np.asarray(case.identities) if case.identities is not None else np.arange(n)
        hidden = own_photo_hidden(ids)
        rows: list[dict[str, float]] = [{} for _ in range(n)]
        thresholds: dict[str, dict[str, Any]] = {}
        preview = case.protected.preview[0]
        for step, name in enumerate(names):
            check_cancel(cancel)
            probe = np.concatenate([part[name][0] for part in parts])
            gallery = np.concatenate([part[name][1] for part in parts])
            t, source = _threshold(name, params, gallery, ids, self.device)
            thresholds[name] = {"value": t, "source": source}
            cos = scenarios.pair_cosine(probe, gallery, np.arange(n))
            hits = rank1_in_blocks(probe, gallery, ids, hidden, cancel=cancel)
            _score(rows, name, cos, t, hits)
            if progress:
                progress(ProgressEvent(step + 1, len(names), preview,
                                       {f"cosine@{name}": float(np.nanmean(cos))}))
        _headline(rows)
        details = {
            "recognisers": names,
            "thresholds": thresholds,
            "gallery": f"the {n} originals; {int(hidden.sum())} probes may not "
                       "match their own original because their person has another photo",
            "probe": "protected image" if case.protected.wire_kind == "image"
                     else "authorised service embedding",
            "scenario": "naive",
        }
        return AttackResult(self.name, scenarios.THREATS["naive"], rows, details=details)

    def run(self, case: AttackCase, params: IdentityParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        scenarios.require(case, params.scenario, self.title)
        if self.streams(params):  # one shard holding the whole case
            return self.finish(case, [self.run_shard(case, params, cancel)], params, progress,
                               cancel)
        prot = case.protected
        is_image = prot.wire_kind == "image"
        names = recogniser_names(params, is_image)
        n = case.original.shape[0]
        ids = case.identities if case.identities is not None else np.arange(n)

        def embed(model: Any, x: torch.Tensor) -> np.ndarray:
            return embed_numpy(model, x, params.batch_size, self.device, cancel=cancel,
                               error=AttackCancelled)

        setup = scenarios.ScenarioGallery(case, params.scenario, embed, self.device,
                                          aux=params.aux, aux_limit=params.aux_limit,
                                          views=params.views, head_steps=params.head_steps)
        exclude = setup.exclude
        rows: list[dict[str, float]] = [{} for _ in range(n)]
        thresholds: dict[str, dict[str, Any]] = {}
        for step, name in enumerate(names):
            check_cancel(cancel)
            model = models.get(name, self.device)
            probe = self._probe(case, name, params, cancel)
            probe, gallery = setup.embeddings(name, model, probe, params.batch_size)
            t, source = _threshold(name, params, gallery, case.identities, self.device)
            thresholds[name] = {"value": t, "source": source}
            cos = setup.pair_cosine(probe, gallery)
            hits = metrics.rank1_hits(probe, gallery, ids, ids, exclude=exclude)
            _score(rows, name, cos, t, hits)
            if progress:
                progress(ProgressEvent(step + 1, len(names), prot.preview[0],
                                       {f"cosine@{name}": float(np.nanmean(cos))}))
        _headline(rows)
        details = {
            "recognisers": names,
            "thresholds": thresholds,
            "gallery": f"the {n} originals; {int(exclude.any(axis=1).sum())} probes may not "
                       "match their own original because their person has another photo",
            "probe": "protected image" if is_image else "authorised service embedding",
            **setup.details,
        }
        return AttackResult(self.name, scenarios.THREATS[params.scenario], rows,
                            details=details)
