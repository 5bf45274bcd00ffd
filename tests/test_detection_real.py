"""Detection on real and realistic photos: rescaled and composited crops, the retry for small
faces in large frames, the detector choice and multi-face reporting in the CLI.

Margins come from `python bench/hog_floor.py` (see faces/detect.py): SFHQ faces at 0.5-1.5x,
alone or in 1600x1200 frames, score 0.62 or more; background false positives at most 0.06.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepriv_core import faces
from facepriv_core.faces import NoFaceFoundError, detect, detect_and_align

fd = importlib.import_module("facepriv_core.faces.detect")
ROOT = Path(__file__).resolve().parents[1]


def _frame(seed: int, size: tuple[int, int] = (1600, 1200)) -> np.ndarray:
    from skimage import data

    name = ("coffee", "rocket", "brick", "gravel", "clock")[seed % 5]
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.asarray(Image.fromarray(img[..., :3]).resize(size, Image.Resampling.BILINEAR))


def _paste(face: np.ndarray, frame: np.ndarray, x: int, y: int) -> np.ndarray:
    out = frame.copy()
    out[y:y + face.shape[0], x:x + face.shape[1]] = face
    return out


def _inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_sfhq_crops_rescaled_and_composited_are_found(sfhq_dir: Path, scale: float) -> None:
    files = sorted(sfhq_dir.glob("variability_ethnicity_*.jpg"))[:6]
    for k, path in enumerate(files):
        crop = np.asarray(Image.open(path).convert("RGB"))
        h, w = crop.shape[:2]
        face = np.asarray(Image.fromarray(crop).resize((round(w * scale), round(h * scale)),
                                                       Image.Resampling.BICUBIC))
        x, y = 100 + 150 * k, 1200 - face.shape[0] - 40 * k - 10
        img = _paste(face, _frame(k), x, y)
        found = detect(img)
        assert found, f"{path.name} at {scale}x in a 1600x1200 frame"
        region = (x, y, x + face.shape[1], y + face.shape[0])
        assert _inside(found[0].box, region), (path.name, scale, found[0].box, region)
        # measured minimum 0.62: well above the confident tier and far above the floor
        assert found[0].score >= fd.CONFIDENT_SCORE["hog"]


def test_weak_real_face_is_kept_that_the_old_floor_lost(olivetti_path: Path) -> None:
    """Olivetti's real (64 px greyscale) photos upscaled to 128 px: 3 of the first 60 score
    between the new floor and the old 0.3 one (measured); those are detected now, on the
    face, and all 60 are found."""
    from facepriv_core import datasets

    images, _ = datasets.olivetti_arrays(olivetti_path)
    weak = found = 0
    for grey in images[:60]:
        face = np.asarray(Image.fromarray(grey).resize((128, 128), Image.Resampling.BICUBIC))
        rgb = np.stack([face] * 3, axis=-1)
        img = np.pad(rgb, ((32, 32), (32, 32), (0, 0)), constant_values=128)
        kept = detect(img)
        found += bool(kept)
        best = max((d.score for d in detect(img, min_score=-1.0)), default=-1.0)
        if fd.MIN_SCORE["hog"] <= best < 0.3:
            weak += 1
            assert kept and _inside(kept[0].box, (32, 32, 160, 160))
    assert weak >= 2, "expected some Olivetti faces in the 0.1-0.3 band (bench/hog_floor.py)"
    assert found >= 58


def test_small_face_in_a_large_frame_is_retried_upsampled(astronaut: np.ndarray) -> None:
    """Over 1 MP the retry used to be skipped: the astronaut shrunk to 180 px (a ~30 px face)
    in a 1600x1200 frame was lost."""
    small = np.asarray(Image.fromarray(astronaut).resize((180, 180), Image.Resampling.BICUBIC))
    img = _paste(small, _frame(0), 700, 500)
    assert detect(img, auto_upsample=False) == []
    found = detect(img)
    assert found and _inside(found[0].box, (700, 500, 880, 680))


def test_face_free_pictures_have_no_face() -> None:
    for seed in range(5):
        assert detect(_frame(seed, (800, 600))) == []


def test_auto_detector_and_unknown_detector(astronaut: np.ndarray) -> None:
    hog = detect(astronaut, "hog")[0]
    auto = detect(astronaut, "auto")[0]
    assert hog.box == auto.box  # HOG is confident here: MMOD is not run
    with pytest.raises(ValueError, match="hog, mmod, auto"):
        detect(astronaut, "haar")  # type: ignore[arg-type]


def test_auto_falls_back_to_mmod_where_hog_finds_nothing() -> None:
    """scikit-image's cameraman (a real photo, face turned to the camera's eyepiece): HOG
    finds no face, MMOD does, and auto takes MMOD's."""
    from skimage import data

    img = np.stack([data.camera()] * 3, axis=-1)
    assert detect(img, "hog") == []
    (face,) = detect(img, "auto")
    assert _inside(face.box, (170, 100, 270, 210))
    with pytest.raises(NoFaceFoundError):
        detect_and_align(img)
    assert detect_and_align(img, method="auto").faces_found == 1


def _two_faces(astronaut: np.ndarray) -> np.ndarray:
    canvas = np.full((770, 1300, 3), 255, np.uint8)
    canvas[100:612, :512] = astronaut
    canvas[:768, 530:1298] = np.asarray(Image.fromarray(astronaut).resize((768, 768)))
    return canvas


def test_face_index_picks_the_second_face(astronaut: np.ndarray) -> None:
    img = _two_faces(astronaut)
    first, second = detect_and_align(img), detect_and_align(img, face_index=1)
    assert first.box[0] > 530 and second.box[0] < 512
    assert first.faces_found == second.faces_found == 2
    assert second.others == (first.box,)
    assert second.detection_summary() == {"faces_found": 2, "face_used": list(second.box)}
    with pytest.raises(faces.FaceIndexError, match="0 to 1"):
        detect_and_align(img, face_index=2)


def test_no_face_message_names_the_real_options() -> None:
    blank = np.full((300, 300, 3), 128, np.uint8)
    with pytest.raises(NoFaceFoundError, match="--detector mmod") as err:
        detect_and_align(blank)
    assert "Face detector" in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facepriv_core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_protect_reports_faces_found_and_takes_face_index(astronaut: np.ndarray,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "two.png"
    Image.fromarray(_two_faces(astronaut)).save(path)
    base = ("protect", "--defence", "blur", "--image", str(path), "--json")
    first = _cli(*base)
    assert first.returncode == 0, first.stderr[-2000:]
    out = json.loads(first.stdout)
    assert out["faces_found"] == 2 and out["face_used"][0] > 530
    second = json.loads(_cli(*base, "--face-index", "1", "--detector", "hog").stdout)
    assert second["faces_found"] == 2 and second["face_used"][0] < 512
    bad = _cli(*base, "--face-index", "3")
    assert bad.returncode == 2 and "face index 3" in bad.stderr and "Traceback" not in bad.stderr
    wrong = _cli(*base, "--detector", "haar")
    assert wrong.returncode == 2 and "hog" in wrong.stderr and "mmod" in wrong.stderr


@pytest.mark.parametrize("verb", ["protect", "audit", "sweep", "verify"])
def test_every_detecting_verb_offers_the_detector_flag(verb: str) -> None:
    proc = _cli(verb, "--help")
    assert proc.returncode == 0
    assert "--detector" in proc.stdout and "{hog,mmod,auto}" in proc.stdout
    if verb != "verify":
        assert "--face-index" in proc.stdout


def test_audit_json_reports_the_face_used(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "two.png"
    Image.fromarray(_two_faces(astronaut)).save(path)
    proc = _cli("audit", "--defence", "blur", "--image", str(path), "--face-index", "1",
                "--detector", "hog", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["faces_found"] == 2 and out["face_used"][2] < 512  # the smaller, left face
