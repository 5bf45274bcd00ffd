"""The verification protocol on synthetic scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from facepriv_core import verification as v


def test_cosine_matches_definition() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    expected = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b, strict=True)]
    assert np.allclose(v.cosine(a, b), expected)


def test_separable_scores_give_perfect_verification() -> None:
    same = np.array([True] * 100 + [False] * 100)
    scores = np.where(same, 0.8, 0.2) + np.random.default_rng(1).normal(0, 0.02, 200)
    r = v.evaluate_scores(scores, same)
    assert r.accuracy == 1.0 and r.auc == 1.0 and r.tar_at_far_1e2 == 1.0
    assert 0.3 < r.threshold < 0.7
    assert r.pairs == 200


def test_overlapping_scores_give_expected_accuracy() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    same = np.arange(2 * n) < n
    scores = np.where(same, rng.normal(1, 1, 2 * n), rng.normal(-1, 1, 2 * n))
    r = v.evaluate_scores(scores, same)
    # Two unit Gaussians 2 apart: best accuracy Phi(1) = 0.841, AUC Phi(2/sqrt 2) = 0.921.
    assert r.accuracy == pytest.approx(0.841, abs=0.01)
    assert r.auc == pytest.approx(0.921, abs=0.01)
    assert abs(r.threshold) < 0.1
    assert r.tar_at_far_1e3 < r.tar_at_far_1e2 < r.accuracy


def test_best_threshold_is_optimal() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(300)
    same = rng.random(300) < scores
    t = v.best_threshold(scores, same)
    acc = np.mean((scores >= t) == same)
    brute = max(np.mean((scores >= c) == same) for c in np.concatenate([scores, [2.0]]))
    assert acc == pytest.approx(brute)


def test_one_class_is_refused() -> None:
    with pytest.raises(v.VerificationDataError, match="at least 2 same-person and 2 different"):
        v.evaluate_scores(np.ones(20), np.ones(20, bool))


def test_few_pairs_use_fewer_folds() -> None:
    """4 same-person pairs cannot fill 10 stratified folds: the protocol runs with 4."""
    rng = np.random.default_rng(0)
    same = np.array([True] * 4 + [False] * 16)
    scores = np.where(same, 0.9, 0.3) + rng.normal(0, 0.05, 20)
    result = v.evaluate_scores(scores, same)
    assert result.folds == 4 and result.accuracy > 0.9 and result.as_dict()["folds"] == 4
