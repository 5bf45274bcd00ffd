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

Method = Literal["hog", "mmod", "auto"]
#: What `--detector` and the app offer: HOG (fast), MMOD (CNN, slower, finds harder faces),
#: auto (HOG, then MMOD when HOG finds no confident face).
DETECTORS: tuple[str, ...] = ("hog", "mmod", "auto")

# HOG only sees faces of about 80 px and more. When no confident face is found, the image is
# tried once more at twice the size (on a copy of at most UPSAMPLE_MAX_SIDE px, so a large
# photo costs one 4000 px HOG pass at most, about 4x the first one).
UPSAMPLE_MAX_SIDE = 2000
# Larger images are detected on a downscaled copy (landmarks still come from full
# resolution): HOG cost grows with pixels and MMOD on a 12 MP photo takes minutes on a CPU.
DETECT_MAX_SIDE = 2000
# MMOD runs on a copy of at most this side: it then finds faces down to ~4 % of the frame in
# seconds, where the full 2000 px costs 30-50 s on a CPU.
MMOD_MAX_SIDE = 1000
# Detections scoring below MIN_SCORE are dropped; weak ones (under CONFIDENT_SCORE) count only
# in an image where nothing scores CONFIDENT_SCORE, so a weak false positive beside a real
# face is neither taken nor reported as a second face. Measured with `python
# bench/hog_floor.py` (420 real-photo cases: 30 Olivetti faces upscaled to 128-256 px and 40
# SFHQ crops at 0.5-1.5x, each alone and composited into frames of face-free pictures): the
# false positives on those backgrounds score at most 0.057 (14 of 116 at 0.0 or more, none at
# 0.1), skimage's astronaut has suit patches at 0.16 beside her 0.3+ face; real faces go down
# to -0.17 (Olivetti's tight greyscale crops; SFHQ's lowest is 0.62), and a clear 385 px
# frontal face of a real photo scored 0.21. A floor of 0.1 loses 23 of the 420 faces (all
# Olivetti) where 0.3 lost 50, and admits none of the false positives. MMOD keeps dlib's 0:
# its real faces score about 1 and no false positive was seen.
MIN_SCORE: dict[str, float] = {"hog": 0.1, "mmod": 0.0}
CONFIDENT_SCORE: dict[str, float] = {"hog": 0.3, "mmod": 0.0}
# Kept for callers of the old rule (images up to 1 MP were the only ones retried).
AUTO_UPSAMPLE_MAX_PIXELS = 1_000_000


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
    """All faces in a uint8 (H, W, 3) RGB image, largest first: those scoring at least
    CONFIDENT_SCORE, or, when there is none, those from MIN_SCORE up.

    `upsample` doubles the image that many times before detecting (finds smaller faces, 4x
    slower each time). With `auto_upsample`, an image where no confident face is found is
    tried once more at twice the size, whatever its size (see UPSAMPLE_MAX_SIDE). "auto" runs
    HOG and, when HOG finds no confident face, MMOD. `min_score` defaults to
    MIN_SCORE[method].
    """
    if method not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {method!r}")
    img = as_rgb(image)
    if method == "auto":
        found = _find(img, "hog", upsample, auto_upsample, min_score)
        if not _confident(found, "hog"):
            mmod = _find(img, "mmod", upsample, False, None)
            if mmod:
                return mmod
        return found
    return _find(img, method, upsample, auto_upsample, min_score)


def _confident(found: list[Detection], method: str) -> bool:
    return any(d.score >= CONFIDENT_SCORE[method] for d in found)


def _find(img: np.ndarray, method: Literal["hog", "mmod"], upsample: int, auto_upsample: bool,
          min_score: float | None) -> list[Detection]:
    floor = MIN_SCORE[method] if min_score is None else min_score
    max_side = MMOD_MAX_SIDE if method == "mmod" else DETECT_MAX_SIDE
    rects = _detect_rects(img, method, upsample, floor, max_side)
    if auto_upsample and upsample == 0 and not any(
            s >= CONFIDENT_SCORE[method] for _, s in rects):
        retry = _detect_rects(img, method, 1, floor, min(max_side, UPSAMPLE_MAX_SIDE))
        if max((s for _, s in retry), default=-np.inf) > max((s for _, s in rects),
                                                              default=-np.inf):
            rects = retry
    if min_score is None and any(s >= CONFIDENT_SCORE[method] for _, s in rects):
        rects = [(r, s) for r, s in rects if s >= CONFIDENT_SCORE[method]]
    h, w = img.shape[:2]
    found = []
    with _SHAPE5.use() as predictor:
        for rect, score in rects:
            shape = predictor(img, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = (max(rect.left(), 0), max(rect.top(), 0),
                   min(rect.right(), w - 1), min(rect.bottom(), h - 1))
            found.append(Detection(box=box, score=score, landmarks5=pts))
    confident = CONFIDENT_SCORE[method]
    return sorted(found, key=lambda d: (d.score >= confident, d.area), reverse=True)


def _detect_rects(img: np.ndarray, method: Literal["hog", "mmod"], upsample: int,
                  min_score: float, max_side: int = DETECT_MAX_SIDE
                  ) -> list[tuple[dlib.rectangle, float]]:
    """Detector boxes scoring at least `min_score`, in full-resolution coordinates."""
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
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
