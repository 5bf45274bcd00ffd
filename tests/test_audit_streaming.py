"""Audits stream faces in shards (issue 14: memory bounded by the batch, not the dataset):
the shard size never changes the numbers, attacks that need the whole set get it, and the
whole-gallery steps (rank-1, chance, pairs) run without N x N matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facepriv_core import attacks
from facepriv_core.attacks._rules import gallery_chance
from facepriv_core.attacks.identity import own_photo_hidden, rank1_in_blocks
from facepriv_core.attacks.scenarios import gallery_exclusion, pair_cosine
from facepriv_core.audit import AttackSpec, AuditSpec
from facepriv_core.audit import runner as audit_runner
from facepriv_core.datasets import _same_pairs_at, make_pairs
from facepriv_core.metrics import rank1_hits, unit_rows
from facepriv_core.verdicts import chance_rank1
from facepriv_core.verification import cosine
from facepriv_core.verification import pair_cosine as verification_pair_cosine


def _audit(spec: AuditSpec, faces: Any, shard_size: int) -> tuple[Any, list[str]]:
    stages: list[str] = []
    result = audit_runner.run(spec, faces=faces, shard_size=shard_size,
                              progress=lambda stage, done, total: stages.append(stage))
    return result, stages


def _same_numbers(a: Any, b: Any) -> None:
    assert a.numbers() == b.numbers()
    sa, sb = a.summary(), b.summary()
    sa.pop("timings"), sb.pop("timings")
    assert sa == sb


def test_shard_size_does_not_change_the_numbers(olivetti_path: Path) -> None:
    """Noise (a keyless random draw per batch), identity with two recognisers and attribute,
    on 12 faces in shards of 8 (5 rounded up to whole batches of 4) and in one shard."""
    spec = AuditSpec(defence="noise", defence_params={"sigma": 8},
                     dataset=f"olivetti:{olivetti_path}", limit=12, batch_size=4, seed=2,
                     bootstrap=200,
                     attacks=[AttackSpec(name="identity",
                                         params={"recognisers": "mobileface", "batch_size": 4}),
                              AttackSpec(name="attribute", params={"batch_size": 4})])
    faces = audit_runner.load_faces(spec)
    small, stages = _audit(spec, faces, 5)
    whole, whole_stages = _audit(spec, faces, 1000)
    assert "attacking shards" in stages and "attacking shards" not in whole_stages
    _same_numbers(small, whole)
    assert len(small.rows) == 12 and "identity.rank1@mobileface" in small.rows[-1]
    assert small.attacks["attribute"]["attr_cossim"].mean > 0.5
    assert small.verdicts["attribute"].rules  # baselines combined over both shards


def test_keyed_defence_streams_with_one_key_per_batch(olivetti_path: Path) -> None:
    """FaceMix (keyed, feature wire, a transposed utility embedding): same numbers and the
    same key fingerprint whatever the shard size."""
    spec = AuditSpec(defence="facemix", dataset=f"olivetti:{olivetti_path}", limit=20,
                     batch_size=4, reproducible_key=True, bootstrap=100,
                     attacks=[AttackSpec(name="identity", params={"batch_size": 4})])
    faces = audit_runner.load_faces(spec)
    small, _ = _audit(spec, faces, 5)
    whole, _ = _audit(spec, faces, 1000)
    _same_numbers(small, whole)
    assert small.key is not None and small.key == whole.key


def test_images_are_a_bounded_preview(olivetti_path: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    monkeypatch.setattr(audit_runner, "PREVIEW_FACES", 3)
    spec = AuditSpec(defence="pixelate", defence_params={"block": 8}, batch_size=4,
                     dataset=f"olivetti:{olivetti_path}", limit=10, bootstrap=0)
    result, _ = _audit(spec, audit_runner.load_faces(spec), 4)
    assert len(result.rows) == 10
    assert {k: len(v) for k, v in result.images.items()} == {"original": 3, "protected": 3}


def test_attacks_that_need_the_whole_set_get_one_shard() -> None:
    """Streaming is declared per attack (and per params): the runner follows it."""
    def plan(*specs: AttackSpec) -> Any:
        spec = AuditSpec(defence="blur", images=["x.png"], attacks=list(specs))
        return spec, audit_runner._plan(spec, torch.device("cpu"))

    spec, planned = plan(AttackSpec(name="identity"), AttackSpec(name="attribute"))
    assert audit_runner.shard_faces(spec, planned, 10_000) == audit_runner.SHARD_FACES
    assert audit_runner.shard_faces(spec, planned, 10_000, 50) == 64  # whole batches of 32
    spec, planned = plan(AttackSpec(name="identity", params={"scenario": "parrot"}))
    assert audit_runner.shard_faces(spec, planned, 10_000, 50) == 10_000
    whole_set = {"facemix_unmix", "decoder_inversion", "adaptive_decoder", "wiener_deblur",
                 "superres", "denoise", "whitebox_inversion", "ppfr_fd_whitebox"}
    assert whole_set <= set(attacks.names())
    for name in whole_set:
        attack = attacks.get(name)
        assert attack.streams(attack.Params()) is False, name
    for name in attacks.names():
        attack = attacks.get(name)
        if attack.streams(attack.Params()):
            assert "run_shard" in type(attack).__dict__ and "finish" in type(attack).__dict__


def test_whole_gallery_steps_without_n_by_n_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        ids = rng.integers(0, rng.integers(1, 12), size=rng.integers(2, 60))
        assert gallery_chance(ids, True) == chance_rank1(ids, gallery_exclusion(ids))
        assert np.array_equal(own_photo_hidden(ids), np.diag(gallery_exclusion(ids)))
        probe, gallery = rng.normal(size=(len(ids), 8)), rng.normal(size=(len(ids), 8))
        full = rank1_hits(probe, gallery, ids, ids, exclude=gallery_exclusion(ids))
        blocks = rank1_in_blocks(probe, gallery, ids, own_photo_hidden(ids), block=7)
        assert np.array_equal(full, blocks, equal_nan=True)


def test_chunked_cosines_are_the_whole_array_ones() -> None:
    """The end of a large audit scores pairs and probes in chunks (a 13k x 1024-d set held
    whole cost ~1 GB of temporaries); each row is computed as before, so nothing changes."""
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    emb[3] = 0  # a zero row stays zero
    pairs = rng.integers(0, 50, size=(41, 2))
    assert np.array_equal(verification_pair_cosine(emb, pairs, chunk=6),
                          cosine(emb[pairs[:, 0]], emb[pairs[:, 1]]))
    e64 = emb.astype(np.float64)
    want = e64 / np.maximum(np.linalg.norm(e64, axis=1, keepdims=True), 1e-12)
    assert np.array_equal(unit_rows(emb), want)
    partner = rng.integers(-1, 50, size=50)
    p = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    whole = np.where(partner >= 0, np.sum(p * p[np.maximum(partner, 0)], axis=1), np.nan)
    assert np.array_equal(pair_cosine(emb, emb, partner, chunk=7), whole, equal_nan=True)


def test_sampled_same_pairs_are_the_enumerated_ones() -> None:
    """make_pairs samples positions of the same-person pair list without building it."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        ids = rng.integers(0, rng.integers(1, 8), size=rng.integers(2, 50))
        groups = [np.flatnonzero(ids == label) for label in np.unique(ids)]
        every = [(int(i), int(j)) for g in groups for k, i in enumerate(g) for j in g[k + 1:]]
        if not every:
            continue
        picks = np.sort(rng.choice(len(every), min(len(every), 9), replace=False))
        assert _same_pairs_at(groups, picks) == [every[k] for k in picks]
    big = np.arange(13_000) % 16  # 5.3M same-person pairs: sampled, not enumerated
    pairs, same = make_pairs(big, 1500, seed=0)
    assert len(pairs) == 3000 and same.sum() == 1500
    assert np.all(big[pairs[same, 0]] == big[pairs[same, 1]])
