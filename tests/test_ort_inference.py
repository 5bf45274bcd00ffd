"""The onnxruntime path of TF.js graphs: taken only without gradients, equal to the torch
plan, cached on disk, and never in the way (any failure keeps the torch plan)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tfjs_graph import _conv_graph, _package_model

from facepriv_core.models.formats import ort_inference
from facepriv_core.models.formats.tfjs_graph import read_graph
from facepriv_core.models.formats.tfjs_module import TfjsGraphModule

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"  # the exports only: the npm models stay where they are
    monkeypatch.setattr(ort_inference, "cache_root", lambda: cache)
    monkeypatch.delenv(ort_inference.ENV_BACKEND, raising=False)
    return cache


def _graph(tmp_path: Path) -> TfjsGraphModule:
    folder = tmp_path / "graph"
    folder.mkdir()
    return TfjsGraphModule(read_graph(_conv_graph(folder, "SAME", 2, True)))


def _x(n: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(3)
    return torch.from_numpy(rng.normal(size=(n, 8, 10, 3)).astype(np.float32))


def _sessions(module: TfjsGraphModule) -> list[object]:
    return list(module._ort.sessions.values())


def test_gradient_free_forward_uses_onnxruntime_and_agrees(tmp_path: Path,
                                                           _own_cache: Path) -> None:
    module = _graph(tmp_path)
    plain = TfjsGraphModule(module.graph, onnxruntime=False)
    x = _x()
    with torch.no_grad():
        first = module(x, outputs=["conv", "out"])  # builds the session, checked vs torch
        again = module(x[:3], outputs=["conv", "out"])  # another batch size, onnxruntime
        want = plain(x, outputs=["conv", "out"])
    (session,) = _sessions(module)
    assert isinstance(session, ort_inference.OrtForward)
    with torch.no_grad():  # the first batch came from onnxruntime too: a rerun repeats it
        assert torch.equal(module(x, outputs=["conv", "out"])["out"], first["out"])
    for key in ("conv", "out"):
        np.testing.assert_allclose(first[key].numpy(), want[key].numpy(), atol=1e-5)
        np.testing.assert_allclose(again[key].numpy(), want[key][:3].numpy(), atol=1e-5)
    assert list((_own_cache / "onnx").glob("plan-*.onnx"))


def test_inputs_that_need_gradients_keep_the_torch_plan(tmp_path: Path) -> None:
    module = _graph(tmp_path)
    x = _x().requires_grad_(True)
    module(x, outputs=["out"])["out"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not _sessions(module)


def test_a_fresh_process_reads_the_cached_export(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with torch.no_grad():
        _graph(tmp_path)(_x(), outputs=["out"])

    def no_export(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("exported again instead of reading the cache")

    monkeypatch.setattr(ort_inference, "_export", no_export)
    fresh = TfjsGraphModule(read_graph(tmp_path / "graph" / "model.json"))
    with torch.no_grad():
        fresh(_x(), outputs=["out"])
    assert isinstance(_sessions(fresh)[0], ort_inference.OrtForward)


def test_export_failure_or_disagreement_falls_back_to_torch(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    module = _graph(tmp_path)
    want = TfjsGraphModule(module.graph, onnxruntime=False)(_x(), outputs=["out"])["out"]

    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("exporter refused an op")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ort_inference, "_export", broken)
        with caplog.at_level(logging.INFO, logger="facepriv"), torch.no_grad():
            got = [module(_x(), outputs=["out"])["out"] for _ in range(2)]
    assert _sessions(module) == [None]
    assert "using the torch plan" in caplog.text
    for g in got:
        np.testing.assert_allclose(g.numpy(), want.detach().numpy(), atol=1e-6)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ort_inference.OrtForward, "__call__",
                   lambda self, xs: {"out": torch.zeros(5, 6)})
        other = TfjsGraphModule(module.graph)
        with torch.no_grad():
            out = other(_x(), outputs=["out"])["out"]
    assert _sessions(other) == [None]  # the wrong session was refused on its first batch
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), atol=1e-6)


def test_switch_off_and_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _graph(tmp_path)
    monkeypatch.setenv(ort_inference.ENV_BACKEND, "torch")
    with torch.no_grad():
        module(_x(), outputs=["out"])
    assert not _sessions(module)
    monkeypatch.delenv(ort_inference.ENV_BACKEND)
    with torch.no_grad():
        module(_x(), outputs=["out"])
    assert _sessions(module)
    clone = copy.deepcopy(module)  # the CPU fallback copies models; sessions do not travel
    assert not _sessions(clone)
    with torch.no_grad():
        np.testing.assert_allclose(clone(_x(), outputs=["out"])["out"].numpy(),
                                   module(_x(), outputs=["out"])["out"].numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["faceres", "mobileface", "gear"])
def test_package_graphs_export_and_match(name: str) -> None:
    """The zoo's heavy graphs really take the onnxruntime path (not a silent fallback)."""
    graph = read_graph(_package_model(name))
    h, w, c = graph.input_shapes[graph.inputs[0]][1:]
    x = torch.rand(3, h, w, c, generator=torch.Generator().manual_seed(0)) * 255
    module, plain = TfjsGraphModule(graph), TfjsGraphModule(graph, onnxruntime=False)
    with torch.no_grad():
        module(x[:2])
        got, want = module(x), plain(x)
    assert isinstance(_sessions(module)[0], ort_inference.OrtForward)
    for key in want:
        scale = float(want[key].abs().max()) or 1.0
        assert float((got[key] - want[key]).abs().max()) / scale < 1e-4, key


@pytest.mark.parametrize("name", ["cydral-gender", "cydral-age", "fer-emotion"])
def test_networks_rebuilt_in_torch_run_in_onnxruntime_and_keep_torch_for_gradients(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from facepriv_core import models

    if name not in models.available():
        pytest.skip(f"{name} is not installed")
    model = models.get(name, "cpu")
    net = model.net
    net_sessions = getattr(net, "_fast", None) or model._fast
    net_sessions.sessions.clear()
    x = torch.rand(4, 3, 150, 150, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fast = model.probabilities(x)
    (session,) = net_sessions.sessions.values()
    assert isinstance(session, ort_inference.OrtForward)
    monkeypatch.setenv(ort_inference.ENV_BACKEND, "torch")
    with torch.no_grad():
        graph = model.probabilities(x)
    assert float((fast - graph).abs().max()) < 1e-4  # measured <= 3e-6
    xg = x.clone().requires_grad_(True)
    monkeypatch.delenv(ort_inference.ENV_BACKEND)
    model.probabilities(xg)[:, 0].sum().backward()  # the torch graph, differentiable
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0


def test_the_export_cache_key_follows_the_converters_code() -> None:
    from facepriv_core.models.formats import keras_hdf5, onnx_torch

    assert ort_inference.source_digest(keras_hdf5) != ort_inference.source_digest(onnx_torch)
    assert ort_inference.source_digest(keras_hdf5) == ort_inference.source_digest(keras_hdf5)


def test_a_damaged_cache_file_is_exported_again(tmp_path: Path, _own_cache: Path) -> None:
    with torch.no_grad():
        _graph(tmp_path)(_x(), outputs=["out"])
    (cached,) = (_own_cache / "onnx").glob("plan-*.onnx")
    cached.write_bytes(b"not an onnx file")
    fresh = TfjsGraphModule(read_graph(tmp_path / "graph" / "model.json"))
    with torch.no_grad():
        fresh(_x(), outputs=["out"])
    assert isinstance(_sessions(fresh)[0], ort_inference.OrtForward)
    assert cached.read_bytes() != b"not an onnx file"


def test_batches_larger_than_one_run_are_split_and_joined_in_order(tmp_path: Path) -> None:
    module = _graph(tmp_path)
    plain = TfjsGraphModule(module.graph, onnxruntime=False)
    n = 2 * ort_inference.RUN_FACES + 3
    with torch.no_grad():
        module(_x(2), outputs=["out"])  # session built
        got, want = module(_x(n), outputs=["out"])["out"], plain(_x(n), outputs=["out"])["out"]
    assert got.shape == want.shape == (n, 6)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
