"""Data types passed between the face pipeline, models, defences and attacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

Box = tuple[int, int, int, int]  # left, top, right, bottom in original-image pixels

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25
TEMPLATE_CHIP_SIZE = 112


@dataclass(frozen=True, repr=False)
class FaceImage:
    """One aligned face.

    chip150: uint8 (150, 150, 3) RGB, dlib geometry (get_face_chip, size 150, padding 0.25):
             the input of dlib's ResNet and of the attribute models.
    chip112: uint8 (112, 112, 3) RGB, five-point similarity template: display and other models.
    landmarks: float (5, 2) x, y in original-image pixels (None for already-aligned crops).
    box: the detection box (None for already-aligned crops).
    others: boxes of further faces found in the same image (the face used is `box`).
    """

    chip150: np.ndarray
    chip112: np.ndarray
    landmarks: np.ndarray | None = None
    box: Box | None = None
    others: tuple[Box, ...] = field(default_factory=tuple)

    @property
    def faces_found(self) -> int:
        """Faces the detector found in the image (1 for an already-aligned crop)."""
        return 1 + len(self.others)

    def detection_summary(self) -> dict[str, object]:
        """What the CLI and JSON report: `faces_found` and `face_used` (box or None)."""
        return {"faces_found": self.faces_found,
                "face_used": list(self.box) if self.box is not None else None}

    def __repr__(self) -> str:  # never dump pixels into logs
        return f"FaceImage(box={self.box}, others={len(self.others)})"


def chips_to_tensor(chips: np.ndarray | list[np.ndarray], device: str | torch.device = "cpu"
                    ) -> torch.Tensor:
    """uint8 NHWC (or a list of HWC) RGB -> float32 NCHW in [0, 1] on `device`."""
    arr = np.stack(chips) if isinstance(chips, list) else np.asarray(chips)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"chips must be uint8 (N, H, W, 3), got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # torch warns on read-only memory (decoded images often are)
        arr = arr.copy()
    t = torch.from_numpy(arr).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_chips(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 NHWC, rounding to nearest."""
    x = x.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
