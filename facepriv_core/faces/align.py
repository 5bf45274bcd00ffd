"""Face chips from dlib's 5 landmarks: dlib's own 150 px chip and a 112 px five-point template.

The 112 template. The common ArcFace 112x112 template places eye centres at (38.29, 51.70)
and (73.53, 51.50) and the nose tip at (56.03, 71.74), but dlib's 5 points are different
points: the two corners of each eye and the base of the nose (below the tip). DLIB5_TEMPLATE
gives their positions in the ArcFace frame, measured once on the 559 SFHQ sample crops in
which dlib's HOG detector found exactly one face: for each face a similarity was fitted
from the 68-point model's eye centres (mean of each eye's 6 points) and nose tip (point 30)
onto the ArcFace points, the 5-point landmarks were mapped through it, and the median was
taken and made left-right symmetric. The eye-corner midpoints land within 1 px of the
ArcFace eye centres; the nose base lies 6.5 px below the ArcFace nose tip.
"""

from __future__ import annotations

import functools
from typing import TypeAlias

import dlib
import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform, warp

from facepriv_core.faces.decode import MIN_SIDE
from facepriv_core.faces.errors import ImageTooSmallError
from facepriv_core.faces.types import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE, TEMPLATE_CHIP_SIZE

Landmarks: TypeAlias = np.ndarray | dlib.full_object_detection

# dlib 5-point order: image-right eye outer and inner corner, image-left eye outer and inner
# corner, nose base; in 112x112 template pixels (see the module docstring).
DLIB5_TEMPLATE = np.array(
    [(80.5, 51.8), (66.5, 52.9), (31.4, 51.8), (45.3, 52.9), (56.1, 78.2)], dtype=np.float64
)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W) greyscale or (H, W, 3) RGB array as contiguous (H, W, 3) RGB."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def landmarks_array(landmarks: Landmarks) -> np.ndarray:
    """dlib's shape or an array-like as float (5, 2) x, y."""
    if isinstance(landmarks, dlib.full_object_detection):
        landmarks = [(p.x, p.y) for p in landmarks.parts()]
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected dlib's 5 landmarks as (5, 2) x, y, got shape {pts.shape}")
    return pts


def _as_shape(landmarks: Landmarks) -> dlib.full_object_detection:
    """dlib's shape type; array landmarks are rounded, as dlib's points are integers."""
    if isinstance(landmarks, dlib.full_object_detection):
        return landmarks
    pts = np.rint(landmarks_array(landmarks)).astype(int)
    (left, top), (right, bottom) = pts.min(axis=0), pts.max(axis=0)
    return dlib.full_object_detection(
        dlib.rectangle(int(left), int(top), int(right), int(bottom)),
        [dlib.point(int(x), int(y)) for x, y in pts],
    )


def align_dlib_chip(image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
    """uint8 (150, 150, 3): exactly dlib.get_face_chip(size=150, padding=0.25), the input
    dlib's ResNet was trained on."""
    return dlib.get_face_chip(as_rgb(image), _as_shape(landmarks), size=DLIB_CHIP_SIZE,
                              padding=DLIB_CHIP_PADDING)


def template_transform(landmarks: Landmarks) -> SimilarityTransform:
    """Least-squares similarity taking image pixels onto the 112 template."""
    tform = SimilarityTransform.from_estimate(landmarks_array(landmarks), DLIB5_TEMPLATE)
    if not tform or not isinstance(tform, SimilarityTransform):
        raise ValueError("the landmarks are degenerate (all at one point); cannot align")
    return tform


def align_template(image: np.ndarray, landmarks: Landmarks) -> np.ndarray:
    """uint8 (112, 112, 3) in the ArcFace five-point geometry; outside the image is black."""
    return _warp(as_rgb(image), template_transform(landmarks), TEMPLATE_CHIP_SIZE)


@functools.cache
def dlib_chip_to_template() -> SimilarityTransform:
    """Fixed map from 150 px dlib-chip pixels to 112 px template pixels.

    Found by asking dlib where its padded chip lies for a face whose landmarks sit exactly
    on the template (on a 10x grid, as dlib's points are integers). The template is
    left-right symmetric, so the chip is upright and a scale and shift suffice.
    """
    grid = 10.0
    rect = dlib.get_face_chip_details(
        _as_shape(DLIB5_TEMPLATE * grid), DLIB_CHIP_SIZE, DLIB_CHIP_PADDING
    ).rect
    scale = (rect.right() - rect.left()) / (grid * (DLIB_CHIP_SIZE - 1))
    return SimilarityTransform(scale=scale, translation=(rect.left() / grid, rect.top() / grid))


def chips_from_aligned(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chip150, chip112) from a crop already centred on an upright face.

    Assumption: the crop is framed like dlib's 0.25-padded chip (eyes about 30% down,
    about a third of the width apart), as tight dataset crops such as Olivetti roughly are.
    So the whole crop is resized to 150 (a non-square crop is stretched) and the 112 chip
    is cut from it through the fixed chip-to-template map; the template reaches above the
    forehead beyond the crop, which comes out black, as off-image areas do in align_template.
    """
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageTooSmallError(
            f"The face crop is {w}x{h} pixels; it needs at least {MIN_SIDE} pixels on each "
            "side. Use a larger crop."
        )
    size = (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE)
    chip150 = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    return chip150, _warp(chip150, dlib_chip_to_template(), TEMPLATE_CHIP_SIZE)


def _warp(image: np.ndarray, tform: SimilarityTransform, size: int) -> np.ndarray:
    """Bilinear resampling of `image` into a size x size chip; tform maps image -> chip.

    Only the region the chip samples (its corners mapped back, plus a margin for the bilinear
    neighbours) is handed to skimage, which works in float64: a full-image copy of a large
    photo would cost gigabytes. The result is the same as warping the whole image."""
    h, w = image.shape[:2]
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
    src = tform.inverse(corners)
    x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in src.min(axis=0))
    x1, y1 = min(int(np.ceil(src[:, 0].max())) + 3, w), min(int(np.ceil(src[:, 1].max())) + 3, h)
    if x0 >= x1 or y0 >= y1:
        return np.zeros((size, size, 3), np.uint8)
    shifted = SimilarityTransform(translation=(x0, y0)) + tform
    out = warp(image[y0:y1, x0:x1], shifted.inverse, output_shape=(size, size), order=1,
               mode="constant", cval=0.0, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
