"""The model registry: what models exist, whether they can load here, and loading them once.

Every entry declares its task, licence, source package and model card. Availability is
checked without loading weights, so the app can grey out a model and say why. Loaded models
are cached per (name, device).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facepriv_core.errors import FacePrivError, UnknownNameError

CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"  # package data

TASKS = ("recognition", "gender", "age", "emotion", "race", "detection")


class ModelUnavailableError(FacePrivError, RuntimeError):
    """The model cannot be loaded here; the message says why and how to get it."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. `loader` is 'module:function', imported lazily and called as
    function(device, *loader_args)."""

    name: str
    task: str
    licence: str
    source: str
    summary: str
    loader: str
    check: Callable[[], str | None]
    differentiable: bool = True
    loader_args: tuple[str, ...] = ()
    card_name: str | None = None  # entries of one family may share a card

    @property
    def card(self) -> Path:
        return CARDS_DIR / f"{self.card_name or self.name}.md"


@dataclass(frozen=True)
class ModelStatus:
    """Availability of one entry, as listed by `facepriv models list`."""

    name: str
    task: str
    available: bool
    reason: str | None
    licence: str
    source: str
    differentiable: bool
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_REGISTRY: dict[str, ModelEntry] = {}
_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def register(entry: ModelEntry) -> ModelEntry:
    if entry.task not in TASKS:
        raise ValueError(f"unknown task {entry.task!r}; expected one of {TASKS}")
    _REGISTRY[entry.name] = entry
    return entry


def entry(name: str) -> ModelEntry:
    _ensure_catalog()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownNameError(f"unknown model {name!r}; known: {known}") from None


def status(name: str) -> ModelStatus:
    e = entry(name)
    try:
        reason = e.check()
    except Exception as exc:  # a broken check must not break the listing
        reason = f"availability check failed: {exc}"
    return ModelStatus(e.name, e.task, reason is None, reason, e.licence, e.source,
                       e.differentiable, e.summary)


def list_models(task: str | None = None) -> list[ModelStatus]:
    _ensure_catalog()
    return [status(n) for n, e in sorted(_REGISTRY.items()) if task in (None, e.task)]


def available(task: str | None = None) -> list[str]:
    return [s.name for s in list_models(task) if s.available]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for, else the best present (cuda > mps > cpu)."""
    if device not in (None, "auto"):
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get(name: str, device: str | torch.device | None = "cpu") -> Any:
    """The loaded model `name` on `device`, loaded once and cached. Availability is checked
    before loading only: a loaded model is in memory, and some checks read files."""
    dev = resolve_device(device)
    key = (name, str(dev))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    st = status(name)
    if not st.available:
        raise ModelUnavailableError(f"model '{name}' is unavailable: {st.reason}")
    with _LOCK:
        if key not in _CACHE:
            module_name, func_name = _REGISTRY[name].loader.split(":")
            loader = getattr(importlib.import_module(module_name), func_name)
            _CACHE[key] = loader(dev, *_REGISTRY[name].loader_args)
        return _CACHE[key]


def _ensure_catalog() -> None:
    importlib.import_module("facepriv_core.models.catalog")
