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
