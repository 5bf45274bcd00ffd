"""Calibrate the HOG detection floor (faces.detect.MIN_SCORE["hog"]) on real face crops.

Faces: Olivetti (64 px greyscale photos, upscaled to 128-256 px) and SFHQ crops at several
scales, each shown alone (its crop with a margin) and composited at a seeded random place into
a larger frame built from scikit-image's face-free sample pictures (coffee, rocket, bricks,
...), which supply the false positives. HOG runs with a floor far below any in use, and every
detection is labelled by whether it covers the known face. The table gives the score quantiles
of the faces' best detections and the highest false-positive scores, so a floor can be chosen
between them.

    python bench/hog_floor.py              # prints the table (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import importlib  # noqa: E402

# the module (the package re-exports a function of the same name)
fd = importlib.import_module("facepriv_core.faces.detect")

BACKGROUNDS = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
               "grass", "gravel", "coins", "moon", "clock", "stereo_motorcycle", "retina")


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A face-free frame of (w, h) from a random scikit-image sample picture."""
    from skimage import data

    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = getattr(data, name)()
    img = img[0] if isinstance(img, tuple) else img
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.asarray(Image.fromarray(img[..., :3]).resize(size, Image.Resampling.BILINEAR))


def composite(face: np.ndarray, frame: tuple[int, int], rng: np.random.Generator
              ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`face` pasted at a random place of a background frame; the image and the face box."""
    canvas = background(rng, frame).copy()
    h, w = face.shape[:2]
    x = int(rng.integers(0, frame[0] - w))
    y = int(rng.integers(0, frame[1] - h))
    canvas[y:y + h, x:x + w] = face
    return canvas, (x, y, x + w, y + h)


def covers(box: tuple[int, int, int, int], face: tuple[int, int, int, int]) -> bool:
    """A detection is the face when its centre is in the face region and it is not tiny."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1])
    fside = max(face[2] - face[0], face[3] - face[1])
    return face[0] <= cx <= face[2] and face[1] <= cy <= face[3] and side >= 0.25 * fside


def cases(data_dir: Path, rng: np.random.Generator, n_olivetti: int, n_sfhq: int):
    """(label, image, face box) for every test picture."""
    from facepriv_core import datasets

    images, _ = datasets.olivetti_arrays(data_dir / "olivetti" / "olivettifaces.mat")
    for k in rng.choice(len(images), n_olivetti, replace=False):
        grey = images[int(k)]
        for side in (128, 192, 256):
            face = np.asarray(Image.fromarray(grey).resize((side, side), Image.Resampling.BICUBIC))
            face = np.stack([face] * 3, axis=-1)
            yield f"olivetti@{side}px", face, (0, 0, side, side)
            frame, box = composite(face, (side * 4, side * 3), rng)
            yield f"olivetti@{side}px in frame", frame, box
    sfhq = datasets.load_sfhq(data_dir / "sfhq")
    for k in rng.choice(len(sfhq), n_sfhq, replace=False):
        crop = sfhq.image(int(k))
        if crop.ndim == 2:
            crop = np.stack([crop] * 3, axis=-1)
        for scale in (0.5, 1.0, 1.5):
            h, w = crop.shape[:2]
            face = np.asarray(Image.fromarray(crop).resize((round(w * scale), round(h * scale)),
                                                           Image.Resampling.BICUBIC))
            yield f"sfhq x{scale}", face, (0, 0, face.shape[1], face.shape[0])
            frame, box = composite(face, (max(1600, face.shape[1] * 3), 1200), rng)
            yield f"sfhq x{scale} in 1600x1200", frame, box


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--olivetti", type=int, default=30, help="Olivetti faces to use")
    parser.add_argument("--sfhq", type=int, default=40, help="SFHQ crops to use")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    best: dict[str, list[float]] = {}
    false_pos: list[float] = []
    missed: dict[str, int] = {}
    for label, img, face_box in cases(args.data, rng, args.olivetti, args.sfhq):
        found = fd.detect(img, "hog", auto_upsample=True, min_score=-0.5)
        face_scores = [d.score for d in found if covers(d.box, face_box)]
        false_pos += [d.score for d in found if not covers(d.box, face_box)]
        if face_scores:
            best.setdefault(label, []).append(max(face_scores))
        else:
            missed[label] = missed.get(label, 0) + 1
    print(f"{'case':28s} {'n':>4s} {'missed':>6s} {'min':>6s} {'p01':>6s} {'p05':>6s} "
          f"{'median':>6s}")
    every = []
    for label in sorted(best):
        s = np.array(best[label])
        every += list(s)
        print(f"{label:28s} {len(s):4d} {missed.get(label, 0):6d} {s.min():6.3f} "
              f"{np.quantile(s, 0.01):6.3f} {np.quantile(s, 0.05):6.3f} {np.median(s):6.3f}")
    s = np.array(every)
    fp = np.sort(np.array(false_pos))[::-1]
    print(f"all faces: n={len(s)} min {s.min():.3f} p01 {np.quantile(s, 0.01):.3f} "
          f"p05 {np.quantile(s, 0.05):.3f}")
    print(f"false positives: n={len(fp)} top scores {', '.join(f'{v:.3f}' for v in fp[:8])}")
    for floor in (-0.2, -0.1, 0.0, 0.1, 0.2, 0.3):
        print(f"floor {floor:+.1f}: faces below it {int((s < floor).sum())}/{len(s)}, "
              f"false positives at or above it {int((fp >= floor).sum())}/{len(fp)}")
    print(f"in use: floor {fd.MIN_SCORE['hog']}, confident from {fd.CONFIDENT_SCORE['hog']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
