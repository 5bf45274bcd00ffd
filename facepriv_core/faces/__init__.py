"""The safe face pipeline: untrusted image -> decoded RGB -> detected face -> aligned chips.

Every failure a user can cause raises an InputError subclass whose message can be shown as
is. No UI imports here: the app, the CLI and the benchmarks share this module.
"""

from __future__ import annotations

import numpy as np

from facepriv_core.faces.align import (
    align_dlib_chip,
    align_template,
    chips_from_aligned,
)
from facepriv_core.faces.decode import ImageSource, load_image
from facepriv_core.faces.detect import DETECTORS, Detection, Method, detect
from facepriv_core.faces.errors import (
    EmptyInputError,
    FaceIndexError,
    ImageTooLargeError,
    ImageTooSmallError,
    InputError,
    NoFaceFoundError,
    NotAnImageError,
)
from facepriv_core.faces.types import FaceImage, chips_to_tensor, tensor_to_chips


def detect_and_align(image: np.ndarray, method: Method = "hog", upsample: int = 0,
                     face_index: int = 0) -> FaceImage:
    """Face `face_index` (0: the first of `detect`'s order, confident and largest) of a uint8
    RGB image, aligned; the other faces' boxes are listed in `others`."""
    faces = detect(image, method=method, upsample=upsample)
    if not faces:
        if method == "hog":
            hint = ("or try the MMOD detector (--detector mmod or --detector auto on the "
                    "command line, 'Face detector' in the app's sidebar)")
        else:
            hint = "or use a larger, sharper photo of the face"
        raise NoFaceFoundError(
            "No face was found in the image. Use a photo in which one face is clearly "
            "visible, roughly frontal, well lit and at least about 80 pixels wide, "
            f"{hint}."
        )
    if not 0 <= face_index < len(faces):
        raise FaceIndexError(
            f"face index {face_index} is out of range: {len(faces)} face(s) found, so use "
            f"--face-index 0 to {len(faces) - 1} (0 is the largest confident face)")
    face = faces[face_index]
    return FaceImage(
        chip150=align_dlib_chip(image, face.landmarks5),
        chip112=align_template(image, face.landmarks5),
        landmarks=face.landmarks5,
        box=face.box,
        others=tuple(f.box for k, f in enumerate(faces) if k != face_index),
    )


def from_aligned(image: np.ndarray) -> FaceImage:
    """Skip detection for a crop that is already an aligned face (Olivetti, dataset crops).

    The whole crop is taken as dlib's padded chip; see align.chips_from_aligned.
    """
    chip150, chip112 = chips_from_aligned(image)
    return FaceImage(chip150=chip150, chip112=chip112)


def load_face(
    source: ImageSource,
    aligned: bool = False,
    method: Method = "hog",
    upsample: int = 0,
    *,
    max_pixels: int | None = None,
    face_index: int = 0,
) -> FaceImage:
    """Decode an untrusted image and return its face: detected and aligned, or, with
    `aligned=True`, taken as an already-aligned crop."""
    image = load_image(source, max_pixels=max_pixels)
    if aligned:
        return from_aligned(image)
    return detect_and_align(image, method=method, upsample=upsample, face_index=face_index)


__all__ = [
    "DETECTORS",
    "Detection",
    "EmptyInputError",
    "FaceImage",
    "FaceIndexError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InputError",
    "NoFaceFoundError",
    "NotAnImageError",
    "align_dlib_chip",
    "align_template",
    "chips_to_tensor",
    "detect",
    "detect_and_align",
    "from_aligned",
    "load_face",
    "load_image",
    "tensor_to_chips",
]
