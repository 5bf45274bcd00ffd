"""Optional adapter to deepface's recognisers and attribute models (`pip install '.[deepface]'`).

deepface downloads weights on first use; FacePriv never downloads implicitly. A deepface model
is available only when deepface is installed and its weight file is already under
$DEEPFACE_HOME/.deepface/weights, or when FACEPRIV_ALLOW_DOWNLOADS=1 permits deepface to fetch
it. These models run in TensorFlow: black-box (no gradients), on deepface's own device choice.
"""

from __future__ import annotations

import numpy as np
import torch

from facepriv_core.faces.types import tensor_to_chips
from facepriv_core.models.deepface_specs import (  # noqa: F401  (re-exported)
    DOWNLOADS_ENV,
    MODELS,
    availability_check,
    downloads_allowed,
    weights_dir,
)


def _bgr_chips(x: torch.Tensor) -> list[np.ndarray]:
    return [np.ascontiguousarray(c[..., ::-1]) for c in tensor_to_chips(x)]


class DeepFaceRecognizer:
    """Embeddings from a deepface recogniser on already-aligned chips (detection skipped)."""

    differentiable = False

    def __init__(self, name: str, model_name: str) -> None:
        from deepface import DeepFace

        self.name = name
        self.model_name = model_name
        self._deepface = DeepFace

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        rows = [
            self._deepface.represent(img_path=chip, model_name=self.model_name,
                                     detector_backend="skip", enforce_detection=False)[0]
            ["embedding"]
            for chip in _bgr_chips(x)
        ]
        return torch.tensor(np.asarray(rows, dtype=np.float32))


class DeepFaceAttribute:
    """One deepface attribute head (race, age, gender, emotion) on aligned chips."""

    differentiable = False

    def __init__(self, name: str, action: str) -> None:
        from deepface import DeepFace

        self.name = name
        self.action = action
        self._deepface = DeepFace
        self.labels: tuple[str, ...] = ()

    def analyze(self, x: torch.Tensor) -> list[dict]:
        return [
            self._deepface.analyze(img_path=chip, actions=(self.action,), detector_backend="skip",
                                   enforce_detection=False, silent=True)[0]
            for chip in _bgr_chips(x)
        ]

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C) in deepface's label order (not for age)."""
        rows = [r[self.action] for r in self.analyze(x)]
        self.labels = tuple(rows[0].keys()) if rows else self.labels
        return torch.tensor([[r[k] / 100.0 for k in self.labels] for r in rows])

    @torch.no_grad()
    def years(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([float(r["age"]) for r in self.analyze(x)])


def load(device: torch.device, name: str) -> DeepFaceRecognizer | DeepFaceAttribute:
    """The zoo's loader for every deepface entry (deepface picks its own device)."""
    df_name, task, _ = MODELS[name]
    if task == "recognition":
        return DeepFaceRecognizer(name, df_name)
    return DeepFaceAttribute(name, df_name)
