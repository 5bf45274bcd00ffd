"""Cached resources and per-session helpers shared by the pages (no engine logic here)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from facepriv_core import faces, models


def _installed_stamp() -> tuple[tuple[str, int | None], ...]:
    """When each fetched model package was installed (None: not fetched): a cache key that
    changes after `facepriv models fetch`, so the sidebar never shows stale availability."""
    from facepriv_core.models import npm_models

    stamp = []
    for name in sorted(npm_models.PACKAGES):
        marker = npm_models.package_dir(name) / npm_models.MARKER
        stamp.append((name, marker.stat().st_mtime_ns if marker.is_file() else None))
    return tuple(stamp)


@st.cache_resource(show_spinner=False)
def _statuses(stamp: tuple[tuple[str, int | None], ...]) -> list[models.ModelStatus]:
    del stamp  # only the cache key: a new install stamp re-runs the listing
    return models.list()


def model_statuses() -> list[models.ModelStatus]:
    """Every model's availability, re-checked whenever a model package was (re)fetched."""
    return _statuses(_installed_stamp())


@st.cache_data(show_spinner=False)
def model_card(name: str) -> str:
    """The model's card from facepriv_core/model_cards (source, licence, inputs, known accuracy)."""
    path = models.entry(name).card
    return path.read_text() if path.is_file() else f"No card for `{name}` yet."


@st.cache_data(show_spinner=False)
def sample_image() -> np.ndarray:
    """The built-in sample: NASA's public-domain astronaut portrait shipped with scikit-image."""
    from skimage import data

    return data.astronaut()


@st.cache_data(show_spinner=False, max_entries=1)
def sample_face() -> faces.FaceImage:
    return faces.detect_and_align(sample_image())


@st.cache_resource(show_spinner="Loading dlib-resnet...")
def recogniser() -> object:
    return models.get("dlib-resnet")


@st.cache_resource(show_spinner=False)
def defence(name: str) -> object:
    from facepriv_core import defences

    return defences.get(name)
