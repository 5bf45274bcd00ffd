"""Verdicts: the rule arithmetic, every registered attack's declared rules, and one leaking and
one non-leaking case per attack family on real faces and models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepriv_core import attacks, datasets, defences, faces
from facepriv_core.attacks.base import Attack, AttackCase, AttackResult
from facepriv_core.verdicts import (
    OverallVerdict,
    Phrasing,
    Rule,
    Verdict,
    chance_rank1,
    judge,
    majority_rate,
    overall,
)

PHRASING = Phrasing("identity still matches", "identity no longer matches", "recognisers")


def rule(values: list[float], threshold: float, subject: str = "", higher: bool = True
         ) -> Rule:
    return Rule(metric=f"rank1@{subject}" if subject else "rank1", label="rank-1",
                values=values, threshold=threshold, threshold_name="chance",
                threshold_source="test", higher_leaks=higher, subject=subject)


def test_a_clear_excess_leaks_and_names_the_count() -> None:
    hits = [1.0] * 8 + [0.0] * 2
    misses = [1.0] + [0.0] * 9
    v = judge([rule(hits, 0.08, "faceres"), rule(misses, 0.08, "dlib-resnet"),
               rule([1.0] * 7 + [0.0] * 3, 0.08, "mobileface")], PHRASING)
    assert v.leaks and v.status == "leaks" and v.metric == "rank1@faceres"
    assert v.value == pytest.approx(0.8) and v.ci[0] > 0.08 and v.ci[0] <= 0.8 <= v.ci[1]
    assert v.reason == ("identity still matches for 2 of 3 recognisers: rank-1 0.80 vs "
                        "chance 0.08 (strongest: faceres)")
    assert [o.status for o in v.rules] == ["leaks", "inconclusive", "leaks"]


def test_at_chance_is_no_leak_and_a_noisy_excess_is_inconclusive() -> None:
    safe = judge([rule([0.0] * 20, 0.05, "a"), rule([0.0] * 19 + [1.0], 0.05, "b")],
                 PHRASING)
    assert not safe.leaks and safe.status == "no_leak"
    assert safe.reason.startswith("identity no longer matches for any of 2 recognisers")
    noisy = judge([rule([1.0, 0.0, 0.0, 0.0], 0.2)], PHRASING)
    assert not noisy.leaks and noisy.status == "inconclusive"
    assert "audit more faces" in noisy.reason and noisy.ci[0] <= 0.2


def test_lower_leaks_direction_and_utility_rules() -> None:
    err = judge([rule([2.0, 3.0, 2.5, 2.0, 3.0], 9.0, higher=False)], PHRASING)
    assert err.leaks and not err.higher_leaks and err.ci[1] < 9.0
    service = Rule(metric="rank1@dlib-resnet", label="rank-1", values=[1.0] * 5,
                   threshold=0.2, threshold_name="chance", threshold_source="test",
                   subject="dlib-resnet", utility=True)
    v = judge([service], PHRASING)
    assert not v.leaks and v.status == "utility" and "authorised service" in v.reason


def test_same_rows_same_verdict_and_json_round_trip() -> None:
    rules = [rule([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], 0.1, "x")]
    a, b = judge(rules, PHRASING, seed=3), judge(rules, PHRASING, seed=3)
    assert a == b and Verdict.model_validate_json(a.model_dump_json()) == a


def test_chance_rank1_and_majority_rate() -> None:
    assert chance_rank1(np.arange(25)) == pytest.approx(1 / 25)
    ids = np.repeat(np.arange(4), 5)
    exclude = np.eye(20, dtype=bool)  # own photo hidden: 4 of the other 19 are the person
    assert chance_rank1(ids, exclude) == pytest.approx(4 / 19)
    assert majority_rate([0, 1, 1, 1]) == 0.75


def test_overall_names_the_leaking_attacks() -> None:
    leak = judge([rule([1.0] * 10, 0.1, "faceres")], PHRASING)
    safe = judge([rule([0.0] * 10, 0.1, "faceres")], PHRASING)
    o = overall({"identity": leak, "attribute": safe}, "pixelate (block=16)")
    assert isinstance(o, OverallVerdict) and o.leaks
    assert o.reason.startswith("pixelate (block=16) leaks to 1 of 2 attacks (identity)")
    assert not overall({"attribute": safe}).leaks
    assert "no attack" in overall({}).reason


# Every registered attack declares rules that judge a real run on a small case ----------------

#: Cheap params per attack for the registry contract; an attack not listed runs its defaults.
FAST: dict[str, dict[str, object]] = {
    "identity": {"other_recognisers": False},
    "whitebox_inversion": {"steps": 2},
    "decoder_inversion": {"epochs": 0, "aux_limit": 12, "use_cache": False},
    "adaptive_decoder": {"epochs": 0, "aux_limit": 12, "use_cache": False},
    "facemix_unmix": {"steps": 2},
    "ppfr_fd_whitebox": {"aux_limit": 12, "use_cache": False},
}
#: Defences tried in order until one's wire is one the attack applies to.
DEFENCES = ("pixelate", "split", "facemix", "ppfr_fd", "none", "xnn")


@pytest.fixture(scope="module")
def olivetti_case_faces(olivetti_path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """Eight Olivetti faces: four people, two photos each."""
    pick = (np.arange(4)[:, None] * 10 + np.arange(2)).ravel()
    ds = datasets.load(f"olivetti:{olivetti_path}").subset(pick)
    aligned = datasets.align_dataset(ds)
    return faces.chips_to_tensor(aligned.chips), ds.identities[aligned.indices]


def make_case(x: torch.Tensor, ids: np.ndarray | None, defence: str, **params: object
              ) -> AttackCase:
    d = defences.get(defence)
    p = d.Params(**params)
    return AttackCase(original=x, protected=d.protect(x, p, torch.Generator().manual_seed(0)),
                      defence=d, defence_params=p, identities=ids)


def test_every_attack_overrides_the_verdict_rules() -> None:
    for name in attacks.names():
        cls = type(attacks.get(name))
        assert cls.verdict_rules is not Attack.verdict_rules, f"{name} declares no rule"
        assert cls.verdict_phrasing is not Attack.verdict_phrasing, f"{name} has no phrasing"


@pytest.mark.slow
def test_every_registered_attack_gets_a_verdict(olivetti_case_faces, olivetti_path: Path
                                                ) -> None:
    x, ids = olivetti_case_faces
    for name in attacks.names():
        attack = attacks.get(name)
        params = dict(FAST.get(name, {}))
        if "aux" in attack.Params.model_fields:
            params["aux"] = f"olivetti:{olivetti_path}"
        case = None
        for d in DEFENCES:
            candidate = make_case(x, ids, d)
            if attack.applicable(candidate.protected, candidate.defence) is None:
                case = candidate
                break
        assert case is not None, f"no test defence fits {name}"
        result = attack.run(case, attack.Params(**params))
        v = result.verdict
        assert isinstance(v, Verdict), f"{name} produced no verdict"
        assert np.isfinite(v.value) and np.isfinite(v.threshold) and len(v.ci) == 2
        assert v.ci[0] <= v.value + 1e-9 <= v.ci[1] + 2e-9 and v.reason and v.threshold_source
        assert v.metric in {o.metric for o in v.rules}


# One leaking and one non-leaking case per family (margins from measured values) -------------

def run(name: str, case: AttackCase, **params: object) -> AttackResult:
    a = attacks.get(name)
    return a.run(case, a.Params(**params))


@pytest.fixture(scope="module")
def four_people(olivetti_path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """Twenty Olivetti faces: four people, five photos each (chance rank-1 4/19 = 0.21)."""
    pick = (np.arange(4)[:, None] * 10 + np.arange(5)).ravel()
    ds = datasets.load(f"olivetti:{olivetti_path}").subset(pick)
    aligned = datasets.align_dataset(ds)
    return faces.chips_to_tensor(aligned.chips), ds.identities[aligned.indices]


def test_identity_verdict_unprotected_leaks_heavy_pixelation_does_not(four_people) -> None:
    x, ids = four_people
    # Measured: none -> rank-1 1.00, CI [1, 1]; pixelate 75 -> rank-1 0.25, CI [0.05, 0.45].
    leak = run("identity", make_case(x, ids, "none"), other_recognisers=False).verdict
    assert leak is not None and leak.leaks and leak.metric == "rank1@dlib-resnet"
    assert leak.threshold == pytest.approx(4 / 19) and leak.ci[0] > 0.8
    assert leak.reason.startswith("identity still matches (dlib-resnet): rank-1 1.00 vs "
                                  "chance 0.21")
    safe = run("identity", make_case(x, ids, "pixelate", block=75),
               other_recognisers=False).verdict
    assert safe is not None and not safe.leaks and safe.ci[0] < safe.threshold
    assert safe.value < 0.5


def test_identity_verdict_on_one_face_uses_the_same_person_threshold(four_people) -> None:
    x, _ = four_people
    v = run("identity", make_case(x[:1], None, "noise", sigma=4), other_recognisers=False
            ).verdict
    assert v is not None and v.leaks and v.metric == "cosine@dlib-resnet"
    assert v.threshold == pytest.approx(0.921) and v.value > 0.95


def test_identity_on_a_feature_wire_is_the_services_utility(four_people) -> None:
    x, ids = four_people
    v = run("identity", make_case(x, ids, "split")).verdict
    assert v is not None and not v.leaks and v.status == "utility"


def test_reconstruction_verdict_sees_through_the_identity_transform_not_pixelation(
        four_people) -> None:
    x, ids = four_people
    x, ids = x[::2], ids[::2]  # ten faces keep the optimisation short
    # Measured (30 steps, 20 faces): none -> SRRA 1.00, SSIM 0.94 vs mean-face 0.57;
    # pixelate 75 -> SRRA 0.00, SSIM 0.51.
    leak = run("whitebox_inversion", make_case(x, ids, "none"), steps=15).verdict
    assert leak is not None and leak.leaks and leak.metric == "srra" and leak.value > 0.7
    assert leak.reason.startswith("the face is reconstructed: SRRA")
    safe = run("whitebox_inversion", make_case(x, ids, "pixelate", block=75), steps=15).verdict
    assert safe is not None and not safe.leaks
    assert {o.metric: o.value for o in safe.rules}["srra"] < 0.2


@pytest.fixture(scope="module")
def ten_people(sfhq_faces) -> torch.Tensor:
    return faces.chips_to_tensor(sfhq_faces.chips(10, grid="SFHQ_variability_ethnicity"))


def test_attribute_verdict_unprotected_leaks_heavy_blur_does_not(ten_people) -> None:
    leak = run("attribute", make_case(ten_people, None, "none")).verdict
    assert leak is not None and leak.leaks and leak.metric == "gender_agreement"
    assert leak.value == pytest.approx(1.0) and leak.threshold < 0.9
    assert "majority-class rate" in leak.threshold_source
    assert leak.reason.startswith("attributes are still read for ")
    safe = run("attribute", make_case(ten_people, None, "pixelate", block=75)).verdict
    print("attribute pixelate 75:", safe)
    assert safe is not None and not safe.leaks
