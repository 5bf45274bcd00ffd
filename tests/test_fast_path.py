"""The audit's fast path keeps the numbers: resampling as matrix products equals the filters it
replaces, the decoded-ONNX cache gives the same network without the `onnx` package, a
plugin loads without its siblings, and the identity probe reuses the service's own pass."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from facepriv_core import attacks, defences, faces, models
from facepriv_core.attacks.base import AttackCase
from facepriv_core.defences.keys import KeySource
from facepriv_core.errors import UnknownNameError
from facepriv_core.faces.types import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE
from facepriv_core.filters import gaussian_kernel_3sigma, separable_blur
from facepriv_core.models.cydral import CHIP_SIZES, Rechip, _sample_positions
from facepriv_core.models.formats import onnx_torch
from facepriv_core.models.human_models import crop_resize
from facepriv_core.models.human_specs import SPECS

ROOT = Path(__file__).resolve().parents[1]


def _chips(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((n, 3, 150, 150),
                                                                dtype=np.float32))


def _rechip_by_filters(x: torch.Tensor, out_size: int, out_padding: float) -> torch.Tensor:
    """The form Rechip replaced: Gaussian blur (replicated borders), then grid_sample."""
    pos = _sample_positions(out_size, out_padding, DLIB_CHIP_SIZE, DLIB_CHIP_PADDING)
    scale = float(pos[1] - pos[0])
    g = ((2 * pos + 1) / DLIB_CHIP_SIZE - 1).float()
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1)[None].expand(x.shape[0], -1, -1, -1)
    sigma = math.sqrt(scale**2 - 1) / 2
    blurred = separable_blur(x, gaussian_kernel_3sigma(sigma), "replicate")
    return F.grid_sample(blurred, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


@pytest.mark.parametrize("task", sorted(CHIP_SIZES))
def test_rechip_operator_equals_blur_then_grid_sample(task: str) -> None:
    x = _chips()
    size = CHIP_SIZES[task]
    got = Rechip(size, 0.2)(x)
    want = _rechip_by_filters(x, size, 0.2)
    assert got.shape == (6, 3, size, size)
    assert float((got - want).abs().max()) < 1e-5  # measured 7e-7 (gender), 2e-6 (age)


def test_rechip_is_differentiable() -> None:
    x = _chips(2).requires_grad_(True)
    Rechip(32, 0.2)(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def _crop_resize_by_filters(x: torch.Tensor, box: tuple[int, int, int, int], size: int
                            ) -> torch.Tensor:
    left, top, right, bottom = box
    h, w = x.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    x = F.pad(x, pad)
    x = x[..., top + pad[2]:bottom + pad[2], left + pad[0]:right + pad[0]]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


@pytest.mark.parametrize("name", ["faceres", "faceres-deep", "mobileface", "gear-race",
                                  "ssrnet-age", "oarriaga-emotion"])
def test_crop_resize_operator_equals_pad_then_interpolate(name: str) -> None:
    spec = SPECS[name].input
    x = _chips()
    got = crop_resize(x, spec.box, spec.size)
    want = _crop_resize_by_filters(x, spec.box, spec.size)
    assert got.shape == want.shape == (6, 3, spec.size, spec.size)
    assert float((got - want).abs().max()) < 2e-6  # measured <= 1.8e-7


def _small_cnn(path: Path) -> Path:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    fc = rng.normal(size=(4, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2],
                         auto_pad="NOTSET"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["g"]),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(fc, "fc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, path)
    return path


def test_decoded_graph_cache_gives_the_same_network(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(onnx_torch, "cache_root", lambda: cache)
    path = _small_cnn(tmp_path / "cnn.onnx")
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(5, 3, 9, 9)).astype(np.float32))
    import onnxruntime as ort

    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0]
    with torch.no_grad():
        first = onnx_torch.load_onnx_as_torch(path)(x)
    (cached,) = list((cache / "onnx").glob("graph-*.npz"))
    np.testing.assert_allclose(first.numpy(), want, atol=1e-6)

    def no_onnx(model: object) -> onnx_torch.Graph:
        raise AssertionError("the cached graph should not be decoded again")

    monkeypatch.setattr(onnx_torch, "decode", no_onnx)
    with torch.no_grad():
        again = onnx_torch.load_onnx_as_torch(path)(x)
    assert torch.equal(again, first)

    cached.write_bytes(b"not an npz")  # a damaged cache file: decoded again, rewritten
    monkeypatch.undo()
    monkeypatch.setattr(onnx_torch, "cache_root", lambda: cache)
    with torch.no_grad():
        assert torch.equal(onnx_torch.load_onnx_as_torch(path)(x), first)
    assert cached.read_bytes()[:2] == b"PK"


def test_cydral_models_load_without_importing_onnx() -> None:
    """After the first load has cached the decoded graphs, a process that loads both Cydral
    networks never imports the `onnx` package (0.55 s of its start)."""
    code = ("import sys; from facepriv_core import models; models.get('cydral-age'); "
            "models.get('cydral-gender'); print('onnx' in sys.modules)")
    models.get("cydral-age"), models.get("cydral-gender")  # fills the cache in this process
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_a_plugin_named_like_its_module_loads_alone() -> None:
    code = ("import sys; from facepriv_core import attacks; attacks.get('identity'); "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules "
            "if m.startswith('facepriv_core.attacks.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True)
    loaded = out.stdout.strip()
    assert "identity" in loaded and "adaptive_decoder" not in loaded
    assert "facemix_unmix" not in loaded
    # a name that is not a module (pixelate lives in baselines) still resolves
    assert defences.get("pixelate").name == "pixelate"
    with pytest.raises(UnknownNameError, match=r"known: .*identity"):
        attacks.get("no_such_attack")


def test_identity_probe_reuses_the_services_embeddings(sfhq_faces) -> None:
    x = faces.chips_to_tensor(sfhq_faces.chips(6, grid="SFHQ_variability_ethnicity"))
    d = defences.get("pixelate")
    p = d.Params(block=8)
    prot = d.protect_keyed(x, p, torch.Generator().manual_seed(0), KeySource.from_seed(0))
    assert prot.utility_is_embedding
    dlib = models.get("dlib-resnet")
    with torch.no_grad():
        authorised = prot.utility_embedding(dlib)
    attack = attacks.get("identity")
    params = attack.Params(recognisers="dlib-resnet")
    fresh = attack.run_shard(AttackCase(x, prot, d, p), params)
    np.testing.assert_allclose(fresh["dlib-resnet"][0], authorised.numpy(), atol=1e-5)
    given = authorised * 2  # the same directions, so a probe that ignored it would differ
    reused = attack.run_shard(AttackCase(x, prot, d, p,
                                         wire_embeddings={"dlib-resnet": given}), params)
    assert np.array_equal(reused["dlib-resnet"][0], given.float().numpy())  # taken as it is
