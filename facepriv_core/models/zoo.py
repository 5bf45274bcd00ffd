"""The model zoo: whether registered models can load here, and loading them once.

Every entry declares its task, licence, source package and model card. Availability is
checked without loading weights, so the app can grey out a model and say why. Loaded models
are cached per (name, device).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from facepriv_core.errors import UnknownNameError
from facepriv_core.models import catalog  # noqa: F401  (registers the built-in entries)
from facepriv_core.models.registry import (
    ENTRIES,
    ModelEntry,
    ModelStatus,
    ModelUnavailableError,
)

if TYPE_CHECKING:  # torch is imported when a device is resolved, not for listing models
    import torch

_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def entry(name: str) -> ModelEntry:
    try:
        return ENTRIES[name]
    except KeyError:
        known = ", ".join(sorted(ENTRIES))
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
    return [status(n) for n, e in sorted(ENTRIES.items()) if task in (None, e.task)]


def available(task: str | None = None) -> list[str]:
    return [s.name for s in list_models(task) if s.available]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for, else the best present (cuda > mps > cpu).

    A name torch does not know, or a device this machine lacks, is a DeviceError (typed, with
    what to use instead), not a failure deep inside the first tensor operation."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device not in (None, "auto"):
        return _checked_device(str(device))
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(name: str) -> torch.device:
    import torch

    from facepriv_core.errors import DeviceError

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") \
            from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but this machine has no usable CUDA "
                              "GPU (or torch was built without CUDA): use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} asked for, but only "
                              f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(f"device {name!r} asked for, but MPS is not available here: "
                              "use --device cpu or auto")
    elif dev.type != "cpu":
        raise DeviceError(f"device {name!r} is not supported: use cpu, cuda, mps or auto")
    return dev


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
            module_name, func_name = ENTRIES[name].loader.split(":")
            loader = getattr(importlib.import_module(module_name), func_name)
            _CACHE[key] = loader(dev, *ENTRIES[name].loader_args)
        return _CACHE[key]
