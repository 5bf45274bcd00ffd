"""The attribute and identity attacks on SFHQ and Olivetti faces behind baseline defences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facepriv_core import attacks, datasets, defences, faces
from facepriv_core.attacks.attribute import attribute_rows
from facepriv_core.attacks.base import AttackCancelled, AttackCase, AttackResult, ProgressEvent
from facepriv_core.attacks.scenarios import gallery_exclusion
from facepriv_core.defences.base import Protected
from facepriv_core.defences.keys import KeySource


@pytest.fixture(scope="module")
def chips(sfhq_faces) -> torch.Tensor:
    """Ten adults from the ethnicity grid: ten different synthetic people."""
    return faces.chips_to_tensor(sfhq_faces.chips(10, grid="SFHQ_variability_ethnicity"))

def make_case(x: torch.Tensor, defence: str, identities: np.ndarray | None = None,
              **params: object) -> AttackCase:
    d = defences.get(defence)
    p = d.Params(**params)
    return AttackCase(original=x, protected=d.protect_keyed(
                          x, p, torch.Generator().manual_seed(0), KeySource.from_seed(0)),
                      defence=d, defence_params=p, identities=identities)


def attack(name: str, case: AttackCase, **params: object) -> AttackResult:
    a = attacks.get(name)
    events: list[ProgressEvent] = []
    result = a.run(case, a.Params(**params), progress=events.append)
    assert events and events[-1].step == events[-1].total
    assert events[-1].preview is not None and events[-1].preview.dtype == np.uint8
    return result


def test_identity_noise_is_no_defence_pixelation_is_some(chips: torch.Tensor) -> None:
    # dlib-native is out of the default set (a duplicate of dlib-resnet) but can be named
    noise = attack("identity", make_case(chips, "noise", sigma=8),
                   recognisers="dlib-resnet,dlib-native").aggregates
    pixel = attack("identity", make_case(chips, "pixelate", block=32),
                   other_recognisers=False).aggregates
    keys = ["match_rate", "cosine", "rank1", "match@dlib-native", "cosine@dlib-native"]
    print("identity noise sigma=8:", {k: round(noise[k], 4) for k in keys if k in noise})
    print("identity pixelate 32:  ", {k: round(pixel[k], 4) for k in keys if k in pixel})
    assert noise["match_rate"] >= 0.9 and noise["rank1"] >= 0.9
    assert noise["match@dlib-native"] >= 0.9  # the unauthorised recogniser matches too
    assert pixel["match_rate"] < noise["match_rate"]
    assert pixel["cosine"] < noise["cosine"]


def test_identity_default_recognisers_leave_out_the_duplicate() -> None:
    from facepriv_core.attacks.identity import IdentityParams, recogniser_names

    names = recogniser_names(IdentityParams(), is_image=True)
    assert names[0] == "dlib-resnet" and "dlib-native" not in names
    assert "faceres-deep" not in names  # faceres's family: named to be used
    assert recogniser_names(IdentityParams(recognisers="faceres-deep"), True) == [
        "dlib-resnet", "faceres-deep"]
    assert recogniser_names(IdentityParams(recognisers="dlib-native"), True) == [
        "dlib-resnet", "dlib-native"]
    assert recogniser_names(IdentityParams(recognisers="dlib-native"), False) == ["dlib-resnet"]


def test_identity_fits_threshold_and_uses_other_photos(olivetti_path: Path) -> None:
    four_people = (np.arange(4)[:, None] * 10 + np.arange(5)).ravel()  # 5 photos each
    ds = datasets.load(f"olivetti:{olivetti_path}").subset(four_people)
    aligned = datasets.align_dataset(ds)
    x = faces.chips_to_tensor(aligned.chips)
    ids = ds.identities[aligned.indices]
    result = attack("identity", make_case(x, "none", identities=ids), other_recognisers=False)
    info = result.details["thresholds"]["dlib-resnet"]
    print("olivetti, no defence:", result.aggregates, info)
    assert info["source"].startswith("fitted") and 0.5 < info["value"] < 1.0
    assert result.details["recognisers"] == ["dlib-resnet"]
    assert result.aggregates["match_rate"] == 1.0  # a face always matches itself
    assert result.aggregates["rank1"] >= 0.9  # found among the person's *other* photos


def test_identity_given_threshold_and_feature_wire(chips: torch.Tensor) -> None:
    result = attack("identity", make_case(chips, "split"), threshold=0.99)
    assert result.details["probe"] == "authorised service embedding"
    assert result.details["thresholds"]["dlib-resnet"] == {"value": 0.99, "source": "given"}
    assert "cosine@dlib-native" not in result.aggregates  # only the server's own embedding
    assert result.aggregates["cosine"] > 0.9999 and result.aggregates["match_rate"] == 1.0


def test_gallery_exclusion_only_where_the_person_has_another_photo() -> None:
    mask = gallery_exclusion(np.array([0, 0, 1]))
    np.testing.assert_array_equal(mask, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_attribute_unprotected_agrees_heavy_blur_does_not(chips: torch.Tensor) -> None:
    clean = attack("attribute", make_case(chips, "none"))
    blur = attack("attribute", make_case(chips, "blur", kernel=41))
    keys = ["attr_cossim", "gender_flip_rate", "age_abs_error", "emotion_agreement",
            "attr_cossim@gender", "attr_cossim@age", "attr_cossim@emotion"]
    print("attribute none:   ", {k: round(clean.aggregates[k], 4) for k in keys})
    print("attribute blur 41:", {k: round(blur.aggregates[k], 4) for k in keys})
    assert clean.aggregates["attr_cossim"] > 0.999
    assert clean.aggregates["gender_flip_rate"] == 0.0
    assert clean.aggregates["emotion_agreement"] == 1.0
    assert clean.aggregates["age_abs_error"] < 0.5
    assert blur.aggregates["attr_cossim"] < clean.aggregates["attr_cossim"] - 0.05
    assert clean.details["models"]["gender"] == "cydral-gender"


def test_attribute_rows_helper_on_reconstructions(chips: torch.Tensor) -> None:
    rows = attribute_rows(chips[:2], chips[:2].flip(-1))  # a mirror: same attributes, mostly
    assert len(rows) == 2 and {"attr_cossim", "gender_flip_rate", "age_abs_error",
                               "emotion_agreement"} <= set(rows[0])
    with pytest.raises(ValueError, match="shapes differ"):
        attribute_rows(chips[:2], chips[:3])


def test_applicable_gives_reasons(chips: torch.Tensor) -> None:
    split = make_case(chips[:2], "split")
    reason = attacks.get("attribute").applicable(split.protected)
    assert reason is not None and "features" in reason
    with pytest.raises(ValueError, match="features"):
        attacks.get("attribute").run(split, attacks.get("attribute").Params())
    freq = Protected(wire=torch.zeros(2, 3, 8, 8), wire_kind="frequency",
                     preview=np.zeros((2, 8, 8, 3), np.uint8), utility=lambda rec: None)
    reason = attacks.get("identity").applicable(freq)
    assert reason is not None and "frequency" in reason
    assert attacks.get("identity").applicable(split.protected) is None


def test_cancel_stops_the_attacks(chips: torch.Tensor) -> None:
    case = make_case(chips[:2], "none")
    for name in ("attribute", "identity"):
        a = attacks.get(name)
        with pytest.raises(AttackCancelled):
            a.run(case, a.Params(), cancel=lambda: True)
