"""What the optional deepface models are and whether they can load: data only, no torch.

The catalog imports this at start-up to list the models; `deepface_adapter` runs them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

DOWNLOADS_ENV = "FACEPRIV_ALLOW_DOWNLOADS"

# facepriv name -> (deepface name, task, weight file under ~/.deepface/weights)
MODELS: dict[str, tuple[str, str, str]] = {
    "deepface-arcface": ("ArcFace", "recognition", "arcface_weights.h5"),
    "deepface-facenet512": ("Facenet512", "recognition", "facenet512_weights.h5"),
    "deepface-race": ("race", "race", "race_model_single_batch.h5"),
    "deepface-age": ("age", "age", "age_model_weights.h5"),
    "deepface-gender": ("gender", "gender", "gender_model_weights.h5"),
    "deepface-emotion": ("emotion", "emotion", "facial_expression_model_weights.h5"),
}


def weights_dir() -> Path:
    return Path(os.environ.get("DEEPFACE_HOME", Path.home())) / ".deepface" / "weights"


def downloads_allowed() -> bool:
    return os.environ.get(DOWNLOADS_ENV, "") == "1"


def availability_check(name: str) -> Callable[[], str | None]:
    _, _, weight_file = MODELS[name]

    def check() -> str | None:
        if importlib.util.find_spec("deepface") is None:
            return "deepface is not installed; install it with: pip install '.[deepface]'"
        path = weights_dir() / weight_file
        if not path.is_file() and not downloads_allowed():
            return (
                f"weights '{path}' are missing; copy {weight_file} there (set DEEPFACE_HOME to "
                f"choose the folder) or set {DOWNLOADS_ENV}=1 to let deepface download them"
            )
        return None

    return check
