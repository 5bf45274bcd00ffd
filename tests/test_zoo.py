"""The model registry: listing, availability reasons and refusal of unavailable models."""

from __future__ import annotations

import pytest

from facepriv_core import models
from facepriv_core.models import deepface_adapter

REQUIRED = {"dlib-resnet", "dlib-native", "cydral-gender", "cydral-age", "fer-emotion"}


def test_builtin_models_listed_and_available() -> None:
    statuses = {s.name: s for s in models.list()}
    assert set(statuses) >= REQUIRED
    for name in REQUIRED:
        assert statuses[name].available, statuses[name].reason
        assert statuses[name].licence
        assert models.entry(name).card.is_file(), f"model card missing for {name}"


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown model"):
        models.get("no-such-model")


def test_deepface_without_weights_is_unavailable_with_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.delenv(deepface_adapter.DOWNLOADS_ENV, raising=False)
    st = models.status("deepface-race")
    assert not st.available
    assert "deepface" in st.reason
    with pytest.raises(models.ModelUnavailableError, match="deepface"):
        models.get("deepface-race")


def test_registry_refuses_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        models.register(models.ModelEntry("x", "telepathy", "", "", "", "m:f", lambda: None))


def test_every_registered_model_has_a_card() -> None:
    missing = [s.name for s in models.list() if not models.entry(s.name).card.is_file()]
    assert not missing, missing


@pytest.mark.parametrize("module", [
    "facepriv_core.models.dlib_resnet", "facepriv_core.models.catalog",
    "facepriv_core.models.human_models", "facepriv_core.faces", "facepriv_core.defences",
    "facepriv_core.cli.train_cmd", "facepriv_core.attacks", "facepriv_core.cli",
])
def test_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Import cycles only show when a module is the first one imported (the SAN trainer's
    entry point once failed this way): each of these is imported alone."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_npm_specs_use_the_face_pipeline_chip_size() -> None:
    from facepriv_core.faces.types import DLIB_CHIP_SIZE
    from facepriv_core.models import human_specs

    assert human_specs.CHIP_SIZE == DLIB_CHIP_SIZE
