"""Defence-specific attacks: FaceMix unmixing by source separation, PPFR-FD white-box recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from facepriv_core import attacks, defences, faces
from facepriv_core.attacks import AttackCancelled, AttackCase, ProgressEvent
from facepriv_core.defences import ppfr_fd
from facepriv_core.defences.keys import KeySource


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> torch.Tensor:
    return faces.chips_to_tensor(sfhq_faces.chips(8))


def make_case(chips: torch.Tensor, name: str, seed: int = 0, **params: Any) -> AttackCase:
    d = defences.get(name)
    p = d.Params(**params)
    return AttackCase(original=chips, protected=d.protect_keyed(
                          chips, p, torch.Generator().manual_seed(seed), KeySource.from_seed(seed)),
                      defence=d, defence_params=p)


@pytest.mark.parametrize("coefficients", ["uniform", "gaussian"])
def test_unmixing_beats_the_mixed_rows(chips: torch.Tensor, coefficients: str) -> None:
    case = make_case(chips, "facemix", group_size=4, stage="level4.0",
                     coefficients=coefficients)
    attack = attacks.get("facemix_unmix")
    result = attack.run(case, attack.Params(invert=False))
    ica = attack.run(case, attack.Params(method="ica", invert=False))
    sparse = result.aggregates["source_cosine"]
    naive = result.details["baseline"]["source_cosine"]
    print(f"facemix {coefficients}: source cosine sparse {sparse:.4f}, "
          f"ica {ica.aggregates['source_cosine']:.4f}, mixed rows {naive:.4f}")
    assert len(result.per_image) == 8 and result.reconstructions is None
    assert result.details["ica_fallbacks"] == 0
    assert sparse > naive + 0.05 and sparse > 0.99
    assert result.threat_model.knows == ("wire", "shallow_model", "defence_algorithm")


def test_unmixing_is_deterministic_and_reconstructs(chips: torch.Tensor) -> None:
    case = make_case(chips[:4], "facemix", group_size=4, stage="level4.0")
    attack = attacks.get("facemix_unmix")
    params = attack.Params(method="ica", steps=3, report_every=1, baseline=False)
    events: list[ProgressEvent] = []
    first = attack.run(case, params, progress=events.append)
    again = attack.run(case, params)
    assert first.per_image == again.per_image
    assert torch.equal(first.reconstructions, again.reconstructions)
    assert first.reconstructions.shape == (4, 3, 150, 150)
    assert {"source_cosine", "ssim", "psnr", "cosine"} <= set(first.per_image[0])
    assert [e.step for e in events] == [1, 2, 3, 4] and {e.total for e in events} == {4}
    assert events[-1].preview.shape == (150, 150, 3)
    with pytest.raises(AttackCancelled):
        attack.run(case, params, cancel=lambda: True)


def test_defence_specific_attacks_refuse_other_defences(chips: torch.Tensor) -> None:
    split = make_case(chips[:2], "split")
    mixed = make_case(chips[:4], "facemix", group_size=4)
    unmix = attacks.get("facemix_unmix")
    freq = attacks.get("ppfr_fd_whitebox")
    assert "FaceMix" in unmix.applicable(split.protected, split.defence)
    assert unmix.applicable(mixed.protected, mixed.defence) is None
    assert "frequency" in freq.applicable(split.protected, split.defence)
    with pytest.raises(ValueError, match="FaceMix"):
        unmix.run(split, unmix.Params())


def test_ppfr_whitebox_recovers_little(chips: torch.Tensor, sfhq_dir: Path, monkeypatch,
                                       tmp_path: Path) -> None:
    from facepriv_core import data_sources

    x = chips[:6]
    case = make_case(x, "ppfr_fd", seed=3)
    attack = attacks.get("ppfr_fd_whitebox")
    assert attack.applicable(case.protected, case.defence) is None
    with monkeypatch.context() as m:  # no dataset on the machine: empty aux is an error
        m.setattr(data_sources, "data_roots", lambda: [])
        m.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))
        with pytest.raises(ValueError, match="auxiliary faces"):
            attack.run(case, attack.Params())
    events: list[ProgressEvent] = []
    result = attack.run(case, attack.Params(aux=f"sfhq:{sfhq_dir}", aux_limit=60,
                                            use_cache=False), progress=events.append)
    agg = result.aggregates
    base = result.details["baseline_mean_face"]
    print(f"ppfr_fd white-box: ssim(grey) {agg['ssim']:.3f} cosine {agg['cosine']:.3f}; "
          f"auxiliary mean face ssim {base['ssim']:.3f} cosine {base['cosine']:.3f}")
    rec = result.reconstructions
    assert rec.shape == (6, 3, 150, 150) and rec.min() >= 0 and rec.max() <= 1
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert result.details["aux_excluded"] >= 1  # the attacked faces are in the same dataset

    # Ground truth (test only): wire channel j holds kept channels s1[s2[j]], s1[s2[j] + 1].
    p = case.defence_params
    kept = ppfr_fd.selected_channels(p)
    s1 = case.protected.key["shuffle1"]
    s2 = ppfr_fd.shuffle2_permutations(6, ppfr_fd.wire_channels(p),
                                       torch.Generator().manual_seed(3))
    energy = case.protected.wire.pow(2).mean(dim=(2, 3))
    top_hits, all_hits = [], []
    for i, assigned in enumerate(result.details["assigned_frequency"]):
        pairs = [{kept[s1[k]], kept[s1[k + 1]]} for k in s2[i].tolist()]
        hits = [f in pair for f, pair in zip(assigned, pairs, strict=True)]
        top_hits.append(hits[int(energy[i].argmax())])
        all_hits.append(np.mean(hits))
    chance = 2 / len(kept)
    print(f"frequency of the most energetic channel right {np.mean(top_hits):.2f}, of all "
          f"channels {np.mean(all_hits):.3f} (chance {chance:.3f})")
    assert np.mean(top_hits) >= 3 * chance
