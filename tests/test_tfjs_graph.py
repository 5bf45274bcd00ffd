"""The TF.js graph reader: torch against the NumPy reference, quantised weights, refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facepriv_core.models.formats.tfjs_graph import (
    TfjsGraphError,
    UnsupportedTfjsOpError,
    read_graph,
    same_padding,
)
from facepriv_core.models.formats.tfjs_module import TfjsGraphModule
from facepriv_core.models.formats.tfjs_numpy import run_reference

# Every graph the zoo registers (human_specs.SPECS uses these files).
GRAPHS = ["faceres", "faceres-deep", "mobileface", "mobilefacenet", "gear", "age",
          "gender-ssrnet-imdb", "gender", "emotion"]


def _package_model(name: str) -> Path:
    from facepriv_core.models import npm_models

    try:
        return npm_models.model_file("human-models", name)
    except npm_models.ModelNotFetchedError as exc:
        pytest.skip(str(exc))


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _write_model(tmp: Path, nodes: list[dict], weights: list[tuple[dict, bytes]],
                 outputs: dict[str, str] | None = None) -> Path:
    """A graph-model folder: model.json and one shard."""
    (tmp / "w.bin").write_bytes(b"".join(b for _, b in weights))
    doc = {"format": "graph-model", "modelTopology": {"node": nodes},
           "weightsManifest": [{"paths": ["w.bin"], "weights": [w for w, _ in weights]}]}
    if outputs:
        doc["signature"] = {"outputs": {k: {"name": v} for k, v in outputs.items()}}
    (tmp / "model.json").write_text(json.dumps(doc))
    return tmp / "model.json"


def _f32(name: str, arr: np.ndarray) -> tuple[dict, bytes]:
    arr = np.asarray(arr, np.float32)
    return {"name": name, "shape": list(arr.shape), "dtype": "float32"}, arr.tobytes()


def _conv_graph(tmp: Path, padding: str, stride: int, depthwise: bool) -> Path:
    """input -> (depthwise) conv with bias + relu6 -> avg pool SAME -> mean over H, W."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3, 3, 2 if depthwise else 4)).astype(np.float32)
    b = rng.normal(size=(6 if depthwise else 4,)).astype(np.float32)
    op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
    strides = {"list": {"i": ["1", str(stride), str(stride), "1"]}}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [
            {"size": "-1"}, {"size": "9"}, {"size": "9"}, {"size": "3"}]}}}},
        {"name": "w", "op": "Const"}, {"name": "b", "op": "Const"}, {"name": "axes", "op": "Const"},
        {"name": "conv", "op": op, "input": ["x", "w", "b"], "attr": {
            "padding": {"s": _b64(padding)}, "strides": strides,
            "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu6")]}}}},
        {"name": "pool", "op": "AvgPool", "input": ["conv"], "attr": {
            "padding": {"s": _b64("SAME")}, "ksize": {"list": {"i": ["1", "2", "2", "1"]}},
            "strides": {"list": {"i": ["1", "2", "2", "1"]}}}},
        {"name": "out", "op": "Mean", "input": ["pool", "axes"],
         "attr": {"keep_dims": {"b": False}}},
    ]
    axes = np.array([1, 2], np.int32)
    weights = [_f32("w", w), _f32("b", b),
               ({"name": "axes", "shape": [2], "dtype": "int32"}, axes.tobytes())]
    return _write_model(tmp, nodes, weights)


@pytest.mark.parametrize("name", GRAPHS)
def test_package_graph_matches_numpy_reference(name: str, sfhq_faces) -> None:
    graph = read_graph(_package_model(name))
    h, w, c = graph.input_shapes[graph.inputs[0]][1:]
    chip = torch.from_numpy(sfhq_faces.chips(1)).permute(0, 3, 1, 2).float()
    real = torch.nn.functional.interpolate(chip, size=(h, w), antialias=True, mode="bilinear")
    real = real.mean(dim=1, keepdim=True) if c == 1 else real
    rand = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0)) * 255
    x = torch.cat([real, rand]).permute(0, 2, 3, 1).contiguous()
    module = TfjsGraphModule(graph).eval()
    with torch.no_grad():
        got = module(x)
    want = run_reference(graph, x.numpy())
    assert got.keys() == want.keys() and got
    for key in got:
        diff = np.abs(got[key].double().numpy() - want[key]).max()
        assert diff < 1e-4, f"{name}:{key} differs by {diff:.2e}"


@pytest.mark.parametrize(("padding", "stride", "depthwise"),
                         [("SAME", 2, False), ("VALID", 2, False), ("SAME", 1, True),
                          ("SAME", 2, True)])
def test_conv_padding_and_pooling_agree(tmp_path: Path, padding: str, stride: int,
                                        depthwise: bool) -> None:
    graph = read_graph(_conv_graph(tmp_path, padding, stride, depthwise))
    x = np.random.default_rng(2).normal(size=(2, 9, 9, 3)).astype(np.float32) * 3
    got = TfjsGraphModule(graph)(torch.from_numpy(x))["out"].numpy()
    want = run_reference(graph, x)["out"]
    assert got.shape == want.shape == (2, 6 if depthwise else 4)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_same_padding_puts_the_extra_pixel_after() -> None:
    assert same_padding(9, 3, 2) == (1, 1)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 1, 1) == (0, 0)


def test_quantised_weights_are_dequantised(tmp_path: Path) -> None:
    q = np.array([0, 10, 255], np.uint8)
    h = np.array([0.5, -2.0], np.float16)
    nodes = [{"name": "x", "op": "Placeholder"}, {"name": "a", "op": "Const"},
             {"name": "b", "op": "Const"}, {"name": "y", "op": "Mul", "input": ["x", "a"]}]
    weights = [({"name": "a", "shape": [3], "dtype": "float32",
                 "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}, q.tobytes()),
               ({"name": "b", "shape": [2], "dtype": "float32",
                 "quantization": {"dtype": "float16"}}, h.tobytes())]
    graph = read_graph(_write_model(tmp_path, nodes, weights, {"y": "y"}))
    np.testing.assert_array_equal(graph.consts["a"], [-1.0, 4.0, 126.5])
    np.testing.assert_array_equal(graph.consts["b"], [0.5, -2.0])
    y = TfjsGraphModule(graph)(torch.ones(3))["y"]
    assert y.tolist() == [-1.0, 4.0, 126.5]


def test_unsupported_op_is_refused_by_name(tmp_path: Path) -> None:
    nodes = [{"name": "x", "op": "Placeholder"}, {"name": "y", "op": "NonMaxSuppressionV5",
                                                   "input": ["x"]},
             {"name": "z", "op": "Einsum", "input": ["y"]}]
    path = _write_model(tmp_path, nodes, [])
    with pytest.raises(UnsupportedTfjsOpError, match="Einsum, NonMaxSuppressionV5"):
        read_graph(path)


def test_truncated_shard_and_non_graph_are_refused(tmp_path: Path) -> None:
    nodes = [{"name": "x", "op": "Placeholder"}, {"name": "a", "op": "Const"}]
    path = _write_model(tmp_path, nodes, [_f32("a", np.ones(4))])
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)
    with pytest.raises((TfjsGraphError, ValueError)):
        read_graph(path)
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(TfjsGraphError, match=r"not a TF\.js graph model"):
        read_graph(path)


def test_gradients_and_intermediate_nodes(tmp_path: Path) -> None:
    graph = read_graph(_conv_graph(tmp_path, "SAME", 1, False))
    module = TfjsGraphModule(graph)
    x = torch.rand(1, 9, 9, 3, requires_grad=True)
    out = module(x, outputs=["conv", "out"])
    assert out["conv"].shape == (1, 9, 9, 4)
    out["out"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="no such node"):
        module(x, outputs=["nope"])


@pytest.mark.parametrize(("padding", "stride", "depthwise"),
                         [("SAME", 2, False), ("SAME", 2, True), ("VALID", 1, True)])
def test_fused_plan_matches_op_by_op_on_even_sizes(tmp_path: Path, padding: str, stride: int,
                                                   depthwise: bool) -> None:
    """Even inputs give TF's asymmetric SAME pads, which the fused conv spells as zero taps."""
    graph = read_graph(_conv_graph(tmp_path, padding, stride, depthwise))
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 8, 10, 3)).astype(np.float32))
    got = TfjsGraphModule(graph)(x, outputs=["conv", "out"])
    want = TfjsGraphModule(graph, fused=False)(x, outputs=["conv", "out"])
    ref = run_reference(graph, x.numpy())["out"]
    for key in ("conv", "out"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["out"].numpy(), ref, atol=1e-5)


@pytest.mark.parametrize(("name", "scale"), [("faceres", 255.0), ("mobileface", 255.0),
                                             ("mobilefacenet", 1.0), ("gear", 1.0)])
def test_fused_plan_keeps_requested_nodes_and_gradients(name: str, scale: float) -> None:
    """Asking for an intermediate node stops fusion there; values and gradients agree."""
    graph = read_graph(_package_model(name))
    h, w, c = graph.input_shapes[graph.inputs[0]][1:]
    fused, plain = TfjsGraphModule(graph), TfjsGraphModule(graph, fused=False)
    inner = [n.name for n in graph.nodes if n.op in ("Add", "AddV2", "Maximum")][2]
    with torch.no_grad():  # the widest output (an embedding), not a saturated sigmoid
        sizes = {k: v.numel() for k, v in fused(torch.zeros(1, h, w, c)).items()}
    out = max(sizes, key=sizes.__getitem__)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, h, w, c, generator=gen) * scale  # the value range of its card
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = fused(xa, outputs=[inner, out]), plain(xb, outputs=[inner, out])
    for key in (inner, out):
        scale = float(b[key].abs().max()) + 1e-6
        assert float((a[key] - b[key]).abs().max()) / scale < 1e-4, key
    weights = torch.randn(a[out].shape, generator=gen)  # a softmax sums to 1: project it
    (a[out] * weights).sum().backward()
    (b[out] * weights).sum().backward()
    assert xa.grad is not None and xb.grad is not None
    # ReLU6 kinks: a pre-activation within float error of 0 or 6 may switch its gradient,
    # so compare the gradients' directions, not their largest element
    cos = torch.nn.functional.cosine_similarity(xa.grad.flatten(), xb.grad.flatten(), dim=0)
    assert float(cos) > 0.999
    assert len(next(iter(fused._plans.values())).steps) < len(plain.node_names())
