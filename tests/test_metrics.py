"""Attack metrics (SRRA, rank-1, attribute agreement, UP score, SSIM) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facepriv_core import metrics


def test_srra_counts_strictly_above_kappa() -> None:
    assert metrics.srra(np.array([0.2, 0.5, 0.9, 0.95]), 0.5) == 0.5  # 0.5 itself does not count
    assert metrics.srra([0.1, 0.2], 0.0) == 1.0
    with pytest.raises(ValueError):
        metrics.srra([], 0.5)


def test_rank1_nearest_gallery_entry() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gids = np.array([10, 11, 12])
    probes = np.array([[0.9, 0.1], [0.2, 1.0], [0.1, -1.0]])  # nearest: 10, 11, and 10 or 12
    # third probe (0.1, -1): cosines 0.0995, -0.995, -0.0995 -> nearest is 10, not its own 12
    assert metrics.rank1(probes, gallery, np.array([10, 11, 12]), gids) == pytest.approx(2 / 3)
    hits = metrics.rank1_hits(probes, gallery, np.array([10, 11, 12]), gids)
    np.testing.assert_array_equal(hits, [1.0, 1.0, 0.0])


def test_rank1_exclusion_mask() -> None:
    gallery = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    gids = np.array([0, 0, 1])
    probes = np.array([[1.0, 0.0], [0.0, 1.0]])
    exclude = np.array([[True, False, False], [True, True, True]])
    # probe 0 may not match its own photo (entry 0): the next best is entry 1, same person.
    hits = metrics.rank1_hits(probes, gallery, np.array([0, 1]), gids, exclude=exclude)
    assert hits[0] == 1.0 and math.isnan(hits[1])


def test_attr_cossim_rows() -> None:
    p = np.array([[1.0, 0.0], [0.6, 0.8], [0.5, 0.5]])
    q = np.array([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0]])
    # 1; (0.48 + 0.48) / 1 = 0.96; 0.5 / (sqrt(0.5) * 1) = sqrt(0.5)
    np.testing.assert_allclose(metrics.attr_cossim(p, q), [1.0, 0.96, math.sqrt(0.5)])
    assert metrics.attr_cossim(np.array([0.2, 0.8]), np.array([0.2, 0.8]))[0] == pytest.approx(1)


def test_gender_age_emotion_rates() -> None:
    g0 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    g1 = np.array([[0.8, 0.2], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]])
    assert metrics.gender_flip_rate(g0, g1) == 0.5
    assert metrics.gender_flip_rate(g0, g0) == 0.0
    assert metrics.age_abs_error([30, 40, 50], [33, 38, 50]) == pytest.approx(5 / 3)
    e0 = np.eye(7)[[3, 3, 6, 0]]
    e1 = np.eye(7)[[3, 4, 6, 1]]
    assert metrics.emotion_agreement(e0, e1) == 0.5


def test_up_score_corners_and_distance() -> None:
    assert metrics.up_score(1.0, 1.0) == 1.0
    assert metrics.up_score(0.0, 0.0) == pytest.approx(0.0)
    assert metrics.up_score(1.0, 0.0) == pytest.approx(1 - math.sqrt(0.5))
    # distance sqrt(0.1^2 + 0.3^2) / sqrt(2) = 0.22361
    assert metrics.up_score(0.9, 0.7) == pytest.approx(1 - math.sqrt(0.05))  # 0.776393
    with pytest.raises(ValueError):
        metrics.up_score(1.2, 0.5)


def test_ssim_of_flat_images_is_the_luminance_term() -> None:
    # Flat images: the contrast-structure term is 1 (no variance), so SSIM is the luminance
    # term l = (2ab + C1) / (a^2 + b^2 + C1).
    a = np.full((150, 150, 3), 100, np.uint8)
    b = np.full((150, 150, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    lum = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert metrics.ssim(a, b) == pytest.approx(lum)
