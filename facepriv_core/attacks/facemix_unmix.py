"""FaceMix unmixing: blind source separation of each group's mixed features, then inversion.

The attacker sees the wire, knows the public algorithm (rows come in groups of S_G, each a
linear mix of the group's S_G shallow feature maps) and the shallow model, but not the secret
per-group matrix A. Per group the S_G wire rows X = A F are S_G observations of S_G sources
(one face's flattened C*H*W features each), a textbook blind source separation problem:

* `sparse` (default): sparse component analysis. dlib-resnet's stage outputs are post-ReLU,
  so many entries are exactly zero (about a quarter at level4.0); wherever only face j is
  non-zero, the observed S_G-vector is s_j(d) * a_j, so the columns of A are the directions
  that many observations share exactly. Found as the S_G most populated exact directions,
  they give F = A^-1 X without any independence assumption.
* `ica`: FastICA (whiten="unit-variance", seeded). Faces' features are strongly correlated
  (cosine ~0.75 between different faces at level4.0), against ICA's independence assumption,
  so it separates poorly; kept for comparison.

Scale and sign: a source is recovered up to a factor. Signs are set so each source sums
positive (post-ReLU features are non-negative). With `uniform` coefficients every row of A
sums to 1 (public), which fixes the scales exactly (A 1 = 1); with `gaussian` ones each column
of A is assumed to have its expected norm sqrt(S_G).

The recovered features then go through the white-box inversion as a features wire at the
defence's stage. Scoring (only) pairs recovered sources with the group's faces by the Hungarian
algorithm on cosine; the naive baseline pairs the mixed rows themselves the same way.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import FastICA

from facepriv_core import models
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
from facepriv_core.attacks.whitebox_inversion import WhiteboxInversion, WhiteboxParams
from facepriv_core.defences.base import Protected, tile_channels
from facepriv_core.defences.facemix import FaceMixParams, group_indices
from facepriv_core.verdicts import Rule

#: Singular values below this share of the largest are treated as zero (duplicate faces).
RANK_TOL = 1e-6


class FaceMixUnmixParams(AttackParams):
    method: Literal["sparse", "ica"] = Field(
        "sparse", description="blind source separation: 'sparse' (exact directions of "
                              "single-face observations, using ReLU zeros) or 'ica' (FastICA)")
    direction_tol: float = Field(1e-7, gt=0.0, le=1e-2,
                                 description="'sparse': 1 - cosine within which observations "
                                             "count as sharing a direction")
    candidates: int = Field(1000, ge=50, le=100_000,
                            description="'sparse': observations tried as candidate directions")
    invert: bool = Field(True, description="reconstruct faces from the recovered features "
                                           "(False: feature-level recovery only)")
    baseline: bool = Field(True, description="also invert the mixed rows directly (the naive "
                                             "attack) for comparison; costs a second inversion")
    steps: int = Field(100, ge=1, le=20000, description="white-box inversion steps")
    lr: float = Field(0.1, gt=0.0, le=10.0, description="white-box inversion step size")
    tv_weight: float = Field(0.3, ge=0.0, le=100.0, description="white-box TV prior weight")
    report_every: int = Field(10, ge=1, le=1000, description="inversion steps between events")


def _sparse_directions(y: np.ndarray, k: int, tol: float, candidates: int
                       ) -> np.ndarray | None:
    """(r, k) unit columns: the k directions most observations of y (r, D) share exactly,
    or None when fewer than k directions have at least two observations."""
    norms = np.linalg.norm(y, axis=0)
    u = y[:, norms > 1e-9 * max(norms.max(), 1e-30)]
    u = u / np.linalg.norm(u, axis=0)
    found = []
    for _ in range(k):
        if u.shape[1] < 2:
            return None
        picks = np.linspace(0, u.shape[1] - 1, min(candidates, u.shape[1])).astype(int)
        counts = ((u[:, picks].T @ u) > 1 - tol).sum(axis=1)
        if counts.max() < 2:
            return None
        best = u[:, picks[counts.argmax()]]
        near = best @ u > 1 - tol
        direction = u[:, near].mean(axis=1)
        found.append(direction / np.linalg.norm(direction))
        # drop this direction's neighbourhood (either sign) before looking for the next one
        u = u[:, np.abs(found[-1] @ u) < 1 - 100 * tol]
    return np.stack(found, axis=1)


def _ica_mixing(y: np.ndarray, seed: int) -> np.ndarray:
    """(r, r) estimated mixing matrix of y (r, D) by FastICA; sources are its inverse on y."""
    ica = FastICA(y.shape[0], whiten="unit-variance", random_state=seed, max_iter=1000)
    ica.fit(y.T)
    return np.linalg.pinv(ica.components_)


def separate_group(x: np.ndarray, method: str, uniform: bool, seed: int, tol: float,
                   candidates: int) -> tuple[np.ndarray, bool]:
    """(r, D) sources of one group's wire rows x (S, D), and whether `sparse` fell back to ICA.

    r is the rank of x: a group padded with copies of one face holds fewer distinct sources.
    """
    s = x.shape[0]
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    r = int((sv > RANK_TOL * sv[0]).sum())
    basis = u[:, :r]
    y = basis.T @ x  # the observations in the r-dim space the sources span
    mixing = _sparse_directions(y, r, tol, candidates) if method == "sparse" else None
    fell_back = method == "sparse" and mixing is None
    if mixing is None:
        mixing = _ica_mixing(y, seed)
    sources = np.linalg.solve(mixing, y)
    full = basis @ mixing  # (S, r): x = full @ sources
    signs = np.where(sources.sum(axis=1) < 0, -1.0, 1.0)
    sources, full = sources * signs[:, None], full * signs[None, :]
    # A = full @ diag(k) and F = sources / k for unknown factors k
    if uniform:  # rows of A sum to 1: full @ k = 1
        k = np.linalg.lstsq(full, np.ones(s), rcond=None)[0]
        k = np.where(np.abs(k) > 1e-12, k, 1.0)
    else:  # the expected squared norm of a column of a standard normal S x S matrix is S
        k = np.sqrt(s) / np.linalg.norm(full, axis=0)
    return sources / k[:, None], fell_back


def _match(recovered: torch.Tensor, truth: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian pairing of truth rows with recovered rows by cosine: (index, cosine) per truth
    row (scoring only)."""
    r = torch.nn.functional.normalize(recovered.double(), dim=1)
    t = torch.nn.functional.normalize(truth.double(), dim=1)
    cos = (t @ r.T).numpy()
    rows, cols = linear_sum_assignment(-cos)
    index = np.full(len(truth), -1)
    index[rows] = cols
    value = np.full(len(truth), np.nan)
    value[rows] = cos[rows, cols]
    return index, value


def _no_utility(recognizer: Any) -> torch.Tensor:
    """The separated sources are the attacker's, not a wire an authorised service computes
    on: asking them for a utility embedding is a bug, not a None."""
    raise TypeError("unmixed FaceMix sources have no authorised utility embedding")


def _pairing(wire: torch.Tensor, feats: torch.Tensor, groups: torch.Tensor, n: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """For each real face: the wire-row index of its Hungarian partner in its group, cosine."""
    size = groups.shape[1]
    rows = np.full(n, -1)
    cos = np.full(n, np.nan)
    for g, members in enumerate(groups):
        start = g * size
        index, value = _match(wire[start:start + size].flatten(1), feats[members].flatten(1))
        for j in range(size):
            if start + j < n and index[j] >= 0:
                rows[start + j], cos[start + j] = start + index[j], value[j]
    return rows, cos


@register("facemix_unmix")
class FaceMixUnmix(Attack[FaceMixUnmixParams]):
    title = "FaceMix unmixing (blind source separation per group, then white-box inversion)"
    threat = ThreatModel(
        knows=("wire", "shallow_model", "defence_algorithm"),
        sentence="The server knows faces are mixed in groups and separates each group's "
                 "features blindly, without the secret matrices, then inverts them.",
    )
    applies_to = frozenset({"features"})
    needs = frozenset({"group_mixing"})
    Params = FaceMixUnmixParams
    verdict_phrasing = _rules.RECONSTRUCTION

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        """Separated sources closer to the true features than the mixed rows are (the naive
        pairing), and, when inverted, the reconstruction rules."""
        rules = _rules.reconstruction_rules(case, result)
        naive = result.details.get("baseline", {}).get("source_cosine")
        if naive is not None and np.isfinite(naive):
            rules.insert(0, Rule(
                metric="source_cosine", label="source cosine",
                values=[float(r.get("source_cosine", np.nan)) for r in result.per_image],
                threshold=float(naive), threshold_name="the mixed rows' own",
                threshold_source="cosine of the mixed wire rows themselves to the true "
                                 "features (no unmixing)", subject="features"))
        return rules

    def _invert(self, case: AttackCase, feats: torch.Tensor, params: FaceMixUnmixParams,
                offset: int, total: int, progress: ProgressFn | None, cancel: CancelFn | None
                ) -> AttackResult:
        """White-box inversion of `feats` as a features wire; progress steps shifted."""
        def shifted(event: ProgressEvent) -> None:
            if progress:
                progress(ProgressEvent(offset + event.step, total, event.preview,
                                       event.metrics))

        wire = Protected(wire=feats, wire_kind="features", preview=tile_channels(feats[:1]),
                         utility=_no_utility)
        sub = AttackCase(original=case.original, protected=wire, defence=case.defence,
                         defence_params=case.defence_params, identities=case.identities,
                         seed=case.seed, embeddings=case.embeddings)
        inv = WhiteboxInversion(self.device)
        return inv.run(sub, WhiteboxParams(steps=params.steps, lr=params.lr,
                                           tv_weight=params.tv_weight,
                                           report_every=params.report_every),
                       progress=shifted, cancel=cancel)

    def run(self, case: AttackCase, params: FaceMixUnmixParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        reason = self.applicable(case.protected, case.defence)
        if reason:
            raise ValueError(reason)
        start = time.perf_counter()
        dp = case.defence_params_as(FaceMixParams)
        size = dp.group_size
        wire = case.protected.wire.detach().cpu().double()
        if wire.shape[0] % size:
            raise ValueError(f"a FaceMix wire holds whole groups of {size} rows, "
                             f"not {wire.shape[0]}")
        n = case.original.shape[0]
        groups = group_indices(n, size)
        inversions = params.invert * (1 + params.baseline)
        total = len(groups) + inversions * params.steps
        flat = wire.flatten(1).numpy()
        recovered = torch.zeros_like(wire)
        fallbacks = 0
        for g in range(len(groups)):
            check_cancel(cancel)
            sl = slice(g * size, (g + 1) * size)
            sources, fell_back = separate_group(flat[sl], params.method,
                                                dp.coefficients == "uniform", case.seed + g,
                                                params.direction_tol, params.candidates)
            recovered[sl][:len(sources)] = torch.from_numpy(sources).view(-1, *wire.shape[1:])
            fallbacks += fell_back
            if progress:
                progress(ProgressEvent(g + 1, total, metrics={"groups_separated": g + 1}))
        # Scoring only: the true features, to pair faces with sources and mixed rows.
        shallow = models.get("dlib-resnet", self.device).split(dp.stage)[0]
        with torch.no_grad():
            truth = shallow(case.original.to(self.device)).cpu().double()
        rows, source_cos = _pairing(recovered, truth, groups, n)
        base_rows, base_cos = _pairing(wire, truth, groups, n)
        details: dict[str, Any] = {
            "method": params.method, "group_size": size, "groups": len(groups),
            "ica_fallbacks": fallbacks, "stage": dp.stage,
            "baseline": {"source_cosine": float(np.nanmean(base_cos)),
                         "per_image_source_cosine": base_cos.tolist()},
        }
        per_image = [{"source_cosine": float(c)} for c in source_cos]
        reconstructions = None
        if params.invert:
            feats = recovered[torch.from_numpy(rows)].float().to(self.device)
            result = self._invert(case, feats, params, len(groups), total, progress, cancel)
            reconstructions = result.reconstructions
            per_image = [{**row, **score}
                         for row, score in zip(per_image, result.per_image, strict=True)]
            if params.baseline:
                mixed = wire[torch.from_numpy(base_rows)].float().to(self.device)
                naive = self._invert(case, mixed, params, len(groups) + params.steps, total,
                                     progress, cancel)
                details["baseline"].update(naive.aggregates)
                details["baseline"]["per_image"] = naive.per_image
        details["seconds"] = time.perf_counter() - start
        return AttackResult(attack=self.name, threat_model=self.threat, per_image=per_image,
                            reconstructions=reconstructions, details=details)
