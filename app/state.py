"""The per-session store every page reads, and cached resources (no engine logic here).

Streamlit forgets a widget's value when a page that does not draw it runs, so a page change
would reset the face, the defence and its parameters. Here they live in `st.session_state`
under keys no widget owns: `kept_widget` restores a widget's last value before it is drawn and
saves it after. The face is held in memory only (never written to disk); results are appended
to one run history that a new launch never overwrites.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from facepriv_core import faces, models

_KEPT = "_kept_widgets"
_FACE = "_current_face"
_RUNS = "_runs"
_COUNTER = "_run_counter"


# -- cached resources (shared by all sessions: models and the public sample only) --------------

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
def recogniser() -> Any:
    return models.get("dlib-resnet")


@st.cache_resource(show_spinner=False)
def defence(name: str) -> Any:
    from facepriv_core import defences

    return defences.get(name)


# -- widget values that survive a page change ---------------------------------------------------

def kept(key: str, default: Any = None) -> Any:
    """The last value a kept widget had in this session (`default` before it was drawn)."""
    return st.session_state.setdefault(_KEPT, {}).get(key, default)


def kept_widget(widget: Callable[..., Any], label: str, *, key: str, **kwargs: Any) -> Any:
    """Draw `widget` so that its value survives pages that do not draw it.

    The last value is passed as the widget's default (`index`, `value` or `default`): a page
    change gives a widget fresh state, and this is what it starts from. `on_change` saves the
    new value before the rerun, so whatever the page draws first (the context bar) sees it."""
    store: dict[str, Any] = st.session_state.setdefault(_KEPT, {})
    if key in store:
        last = store[key]
        options = list(kwargs.get("options", []))
        if "index" in kwargs or (options and widget in (st.selectbox, st.radio)):
            if last in options:
                kwargs["index"] = options.index(last)
        elif "default" in kwargs or widget is st.multiselect:
            kwargs["default"] = [v for v in last if v in options]
        else:
            kwargs["value"] = last

    def save() -> None:
        if key in st.session_state:
            store[key] = st.session_state[key]

    value = widget(label, key=key, on_change=save, **kwargs)
    store[key] = value
    return value


# -- the current face ---------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class CurrentFace:
    """The face this session works on: the image, its aligned chips and a short label.

    `digest` tells faces apart inside this session (it is never shown as the face itself)."""

    label: str
    image: np.ndarray
    face: faces.FaceImage
    digest: str

    def __repr__(self) -> str:
        return f"CurrentFace({self.label!r})"


def _digest(face: faces.FaceImage) -> str:
    return hashlib.sha256(face.chip150.tobytes()).hexdigest()[:10]


def set_face(label: str, image: np.ndarray, face: faces.FaceImage) -> CurrentFace:
    current = CurrentFace(label, image, face, _digest(face))
    st.session_state[_FACE] = current
    return current


def current_face() -> CurrentFace:
    """The face picked on the Face page; the built-in sample until one is picked."""
    current = st.session_state.get(_FACE)
    if current is None:
        current = set_face(SAMPLE_SHORT, sample_image(), sample_face())
    return current


SAMPLE_LABEL = "Built-in sample (NASA astronaut, public domain)"
UPLOAD_LABEL = "Upload"
SAMPLE_SHORT = "built-in sample (astronaut)"


# -- the run history ----------------------------------------------------------------------------

@dataclass(repr=False)
class Run:
    """One launched piece of work and exactly what it ran on, frozen at launch.

    `params` never holds a key: keyed defences are identified by `key_fingerprint`."""

    number: int
    kind: str  # "attack", "protect", "compare", "sweep", "benchmark"
    name: str  # attack name, defence name, sweep label...
    face_label: str
    defence: str
    params: dict[str, Any]
    seed: int
    handle: Any  # a jobs.JobHandle (or None for work done inline)
    wire: str = ""  # e.g. "image 3x150x150, 67,500 bytes"
    wire_preview: np.ndarray | None = None
    original: np.ndarray | None = None
    key_fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # for inline runs (no handle)
    created: float = field(default_factory=time.time)

    @property
    def title(self) -> str:
        if self.kind == "attack":
            return f"#{self.number} {self.name} on {self.defence}"
        return f"#{self.number} {self.name}"

    @property
    def status(self) -> str:
        return "done" if self.handle is None else str(self.handle.status.value)

    @property
    def output(self) -> Any:
        return self.result if self.handle is None else self.handle.result

    def params_text(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v not in ("", None))
        return shown or "defaults"

    def __repr__(self) -> str:
        return f"Run({self.title!r}, {self.status})"


def runs(kind: str | None = None) -> list[Run]:
    """Every run of this session, oldest first (optionally of one kind)."""
    every: list[Run] = st.session_state.setdefault(_RUNS, [])
    return [r for r in every if kind is None or r.kind == kind]


def add_run(**fields: Any) -> Run:
    counter = st.session_state.setdefault(_COUNTER, itertools.count(1))
    run = Run(number=next(counter), **fields)
    st.session_state.setdefault(_RUNS, []).append(run)
    return run


def session_id() -> str:
    """This browser session's id (jobs are queued fairly and capped per session)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def upload_cap_bytes() -> int:
    """The upload cap in force: Streamlit's server.maxUploadSize (MiB) or FacePriv's own
    image cap (facepriv_core.limits), whichever is smaller; messages quote this number."""
    from facepriv_core.limits import current

    streamlit_cap = int(st.get_option("server.maxUploadSize")) * 2**20
    return min(streamlit_cap, current().image_bytes)


def upload_cap_text() -> str:
    from facepriv_core.faces.decode import mib

    return mib(upload_cap_bytes())
