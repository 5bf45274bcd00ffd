"""dlib's own C++ face recogniser (dlib-bin), kept as the black-box reference.

The torch reimplementation (dlib_resnet.py) is checked against this, and attacks that assume
no gradient access run against it. It takes the same float NCHW [0, 1] chips as the torch
model, so the two are interchangeable in the audit code; pixels are rounded to uint8 first,
because that is all dlib accepts.
"""

from __future__ import annotations

import dlib
import numpy as np
import torch

from facepriv_core.faces.types import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE, tensor_to_chips
from facepriv_core.weight_files import DLIB_RESNET_DAT, FRM, SHAPE5_DAT, package_file


class DlibNative:
    """dlib.face_recognition_model_v1 plus the detector and 5-point landmarks that feed it."""

    name = "dlib-native"
    embedding_dim = 128
    input_size = DLIB_CHIP_SIZE
    differentiable = False

    def __init__(self) -> None:
        self.recogniser = dlib.face_recognition_model_v1(str(package_file(FRM, DLIB_RESNET_DAT)))
        self.shape_predictor = dlib.shape_predictor(str(package_file(FRM, SHAPE5_DAT)))
        self.detector = dlib.get_frontal_face_detector()

    def embed_chips(self, chips: np.ndarray) -> torch.Tensor:
        """uint8 (N, 150, 150, 3) RGB dlib chips -> float32 (N, 128) descriptors."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        size = self.input_size
        if chips.dtype != np.uint8 or chips.shape[1:] != (size, size, 3):
            raise ValueError(f"chips must be uint8 (N, {size}, {size}, 3), "
                             f"got {chips.dtype} {chips.shape}")
        if len(chips) == 0:
            return torch.empty(0, self.embedding_dim)
        out = self.recogniser.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return torch.tensor(np.array(out), dtype=torch.float32)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, 3, 150, 150) RGB in [0, 1] -> (N, 128) on x's device (no gradients)."""
        return self.embed_chips(tensor_to_chips(x)).to(x.device)

    def face_chips(self, img: np.ndarray, upsample: int = 0) -> np.ndarray:
        """Every detected face of a uint8 RGB image as dlib chips (largest face first)."""
        boxes = sorted(self.detector(img, upsample), key=lambda r: r.area(), reverse=True)
        chips = [dlib.get_face_chip(img, self.shape_predictor(img, box), size=DLIB_CHIP_SIZE,
                                    padding=DLIB_CHIP_PADDING) for box in boxes]
        empty = np.empty((0, DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3), np.uint8)
        return np.stack(chips) if chips else empty


def load_dlib_native(device: str | torch.device | None = None) -> DlibNative:
    """The native model; `device` is ignored because dlib-bin runs on the CPU."""
    del device
    return DlibNative()
