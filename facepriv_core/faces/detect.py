"""Face detection and 5-point landmarks with dlib (HOG by default, MMOD CNN as an option).

The dlib objects are built once per process on first use and every call on them holds a
lock: dlib's detectors and networks keep scratch buffers, so one instance must not run in
two threads at once (Streamlit serves sessions from threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import dlib
import numpy as np
from PIL import Image

from facepriv_core.faces.align import as_rgb
from facepriv_core.faces.types import Box
from facepriv_core.weight_files import FRM, MMOD_DAT, SHAPE5_DAT, package_file

Method = Literal["hog", "mmod"]

# An image no bigger than this (1 megapixel) is upsampled once when nothing is found in it:
# HOG only sees faces of about 80 px and more, and 4x the pixels is still quick here.
AUTO_UPSAMPLE_MAX_PIXELS = 1_000_000
# Larger images are detected on a downscaled copy (landmarks still come from full
# resolution): HOG cost grows with pixels and MMOD on a 12 MP photo takes minutes on a CPU.
DETECT_MAX_SIDE = 2000
# Detections scoring below this are dropped. dlib's HOG default (0) lets through weak false
# positives (up to 0.16 on skimage's astronaut: patches of her suit) that can be larger than
# the real face, while all 559 SFHQ faces it finds score 0.41 or more. MMOD keeps dlib's 0:
# its real faces score about 1 and no false positive was seen.
MIN_SCORE: dict[str, float] = {"hog": 0.3, "mmod": 0.0}


@dataclass(frozen=True, eq=False)  # eq would compare the landmark arrays ambiguously
class Detection:
    """One face: box (left, top, right, bottom, clipped to the image), detector score
    (HOG SVM margin or MMOD confidence; higher is surer) and dlib's 5 landmarks as float
    (5, 2) x, y: corners of the image-right eye (0, 1), image-left eye (2, 3), nose base (4).
    """

    box: Box
    score: float
    landmarks5: np.ndarray

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)


class _Shared:
    """A dlib object built on first use and used by one thread at a time."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._obj: Any = None
        self._lock = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[Any]:
        with self._lock:
            if self._obj is None:
                self._obj = self._build()
            yield self._obj


def _model_path(rel: str) -> str:
    return str(package_file(FRM, rel, f"pip install {FRM}"))


_HOG = _Shared(dlib.get_frontal_face_detector)
_MMOD = _Shared(lambda: dlib.cnn_face_detection_model_v1(_model_path(MMOD_DAT)))
_SHAPE5 = _Shared(lambda: dlib.shape_predictor(_model_path(SHAPE5_DAT)))


def detect(
    image: np.ndarray,
    method: Method = "hog",
    upsample: int = 0,
    *,
    auto_upsample: bool = True,
    min_score: float | None = None,
) -> list[Detection]:
    """All faces in a uint8 (H, W, 3) RGB image, largest first.

    `upsample` doubles the image that many times before detecting (finds smaller faces, 4x
    slower each time). With `auto_upsample`, a small image where nothing is found is tried
    once more upsampled. `min_score` defaults to MIN_SCORE[method].
    """
    if method not in MIN_SCORE:
        raise ValueError(f"method must be 'hog' or 'mmod', got {method!r}")
    floor = MIN_SCORE[method] if min_score is None else min_score
    img = as_rgb(image)
    h, w = img.shape[:2]
    rects = _detect_rects(img, method, upsample, floor)
    if not rects and auto_upsample and upsample == 0 and h * w <= AUTO_UPSAMPLE_MAX_PIXELS:
        rects = _detect_rects(img, method, 1, floor)
    found = []
    with _SHAPE5.use() as predictor:
        for rect, score in rects:
            shape = predictor(img, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = (max(rect.left(), 0), max(rect.top(), 0),
                   min(rect.right(), w - 1), min(rect.bottom(), h - 1))
            found.append(Detection(box=box, score=score, landmarks5=pts))
    return sorted(found, key=lambda d: d.area, reverse=True)


def _detect_rects(img: np.ndarray, method: Method, upsample: int, min_score: float
                  ) -> list[tuple[dlib.rectangle, float]]:
    """Detector boxes scoring at least `min_score`, in full-resolution coordinates."""
    h, w = img.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = img
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))
    if method == "hog":
        with _HOG.use() as hog:
            rects, scores, _ = hog.run(small, upsample, min_score)
        found = list(zip(rects, scores, strict=True))
    else:
        with _MMOD.use() as mmod:
            found = [(d.rect, d.confidence) for d in mmod(small, upsample)]
    found = [(r, float(s)) for r, s in found if s >= min_score]
    if scale == 1.0:
        return found
    return [(dlib.rectangle(round(r.left() / scale), round(r.top() / scale),
                            round(r.right() / scale), round(r.bottom() / scale)), s)
            for r, s in found]
