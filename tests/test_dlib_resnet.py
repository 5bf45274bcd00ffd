"""The torch reimplementation of dlib's ResNet against dlib itself, and its .dat parser."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from facepriv_core.faces import detect_and_align
from facepriv_core.faces.types import chips_to_tensor
from facepriv_core.models.dlib_native import DlibNative
from facepriv_core.models.dlib_resnet import (
    DEFAULT_SPLIT,
    DlibResNet,
    add_zero_padded,
    load_dlib_resnet,
)
from facepriv_core.models.formats import dlib_dat
from facepriv_core.weight_files import DLIB_RESNET_DAT, FRM, MMOD_DAT, SHAPE5_DAT, package_file

N_SFHQ = 20


@pytest.fixture(scope="module")
def model() -> DlibResNet:
    return load_dlib_resnet("cpu")


@pytest.fixture(scope="module")
def native() -> DlibNative:
    return DlibNative()


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return package_file(FRM, DLIB_RESNET_DAT).read_bytes()


@pytest.fixture(scope="module")
def astronaut_chip(astronaut: np.ndarray) -> np.ndarray:
    return detect_and_align(astronaut).chip150


@pytest.fixture(scope="module")
def sfhq_chips(sfhq_faces) -> np.ndarray:
    """dlib chips of the first N_SFHQ manifest files (sorted) in which exactly one face is found."""
    return sfhq_faces.chips(N_SFHQ, sort=True, single_face=True)

def test_matches_native_dlib(model: DlibResNet, native: DlibNative, astronaut_chip: np.ndarray,
                             sfhq_chips: np.ndarray) -> None:
    x = chips_to_tensor(np.concatenate([astronaut_chip[None], sfhq_chips]))
    with torch.no_grad():
        ours = model(x)
    ref = native.embed(x)
    assert ours.shape == ref.shape == (1 + N_SFHQ, 128)
    cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    assert cos.min().item() >= 0.9999, cos
    assert (ours - ref).abs().max().item() < 1e-3


def test_native_face_chips_are_the_pipeline_chips(native: DlibNative, astronaut: np.ndarray,
                                                  astronaut_chip: np.ndarray) -> None:
    chips = native.face_chips(astronaut)
    assert chips.shape == (1, 150, 150, 3)
    np.testing.assert_array_equal(chips[0], astronaut_chip)


@pytest.mark.parametrize("stage", ["stem", DEFAULT_SPLIT, "level3.0", "level1.2", "level0.0", 6])
def test_split_composes_to_the_whole(model: DlibResNet, astronaut_chip: np.ndarray,
                                     stage: str | int) -> None:
    x = chips_to_tensor(np.stack([astronaut_chip, astronaut_chip[:, ::-1]]))
    shallow, server = model.split(stage)
    with torch.no_grad():
        mid = shallow(x)
        torch.testing.assert_close(server(mid), model(x), atol=1e-5, rtol=0)
        name = stage if isinstance(stage, str) else model.stages[stage]
        torch.testing.assert_close(model.features(x, upto=stage)[name], mid, atol=0, rtol=0)


def test_stages_and_features(model: DlibResNet, astronaut_chip: np.ndarray) -> None:
    assert len(model.stages) == 15 and model.stages[:2] == ["stem", "level4.0"]
    with torch.no_grad():
        feats = model.features(chips_to_tensor(astronaut_chip))
    assert list(feats) == model.stages
    assert feats["stem"].shape == (1, 32, 35, 35)
    assert feats["level3.0"].shape == (1, 64, 17, 17)
    assert feats["level1.0"].shape == (1, 256, 4, 4)  # pooled shortcut 4x4, conv 3x3
    assert feats["level0.0"].shape == (1, 256, 2, 2)
    with pytest.raises(KeyError, match="unknown stage"):
        model.split("level9.0")


def test_gradients_reach_the_input(model: DlibResNet, astronaut_chip: np.ndarray) -> None:
    x = chips_to_tensor(astronaut_chip).requires_grad_(True)
    model.embed(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def test_rejects_wrong_input_shape(model: DlibResNet) -> None:
    with pytest.raises(ValueError, match="150, 150"):
        model(torch.zeros(1, 3, 112, 112))


def test_add_zero_padded_is_dlibs_add_prev() -> None:
    a = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    b = torch.ones(1, 3, 3, 3)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 3, 4, 4)
    want = torch.zeros(1, 3, 4, 4)
    want[:, :2] += a
    want[:, :, :3, :3] += 1
    torch.testing.assert_close(out, want)


def test_parser_reads_the_file(dat_bytes: bytes) -> None:
    parsed = dlib_dat.parse(dat_bytes)
    assert parsed.input_size == 150
    np.testing.assert_allclose(parsed.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert parsed.distance_threshold == pytest.approx(0.6)
    kinds = [layer.kind for layer in parsed.layers]
    assert kinds.count("con") == kinds.count("affine") == 29
    assert parsed.layers[-1].weights["weight"].shape == (256, 128)


def _max_pool_of_5(data: bytes) -> bytes:
    """The file with the stem's max_pool<3,3,2,2> rewritten as a 5x5 window."""
    at = data.index(b"max_pool_2") + len(b"max_pool_2")
    assert data[at:at + 2] == b"\x01\x03"  # the integer 3
    return data[:at + 1] + b"\x05" + data[at + 2:]


@pytest.mark.parametrize(("mangle", "message"), [
    (_max_pool_of_5, "max_pool nr is 5, expected 3"),
    (lambda b: b[: len(b) // 2], "unexpected end of file"),
    (lambda b: b[:-1], "unexpected end of file"),
    (lambda b: b + b"\x00", "unexpected bytes after the network"),
    (lambda b: b"", "unexpected end of file"),
])
def test_parser_rejects_damaged_files(dat_bytes: bytes, mangle: Callable[[bytes], bytes],
                                      message: str) -> None:
    with pytest.raises(dlib_dat.DlibDatError, match=message):
        dlib_dat.parse(mangle(dat_bytes))


@pytest.mark.parametrize(("other", "message"), [
    (SHAPE5_DAT, "implausible string length"),
    (MMOD_DAT, "'loss_mmod_', expected 'loss_metric_2'"),
])
def test_parser_rejects_other_dlib_models(other: str, message: str) -> None:
    with pytest.raises(dlib_dat.DlibDatError, match=message) as info:
        dlib_dat.load(package_file(FRM, other))
    assert "is not a readable dlib_face_recognition_resnet_model_v1.dat" in str(info.value)
