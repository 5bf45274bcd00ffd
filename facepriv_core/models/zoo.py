"""The model zoo: whether registered models can load here, and loading them once.

Every entry declares its task, licence, source package and model card. Availability is
checked without loading weights, so the app can grey out a model and say why. A model that
can load is offered only if it passes the zoo gate (`gate`: figures recorded beside the
cards by `python bench/zoo_gate.py --write`). Loaded models are cached per (name, device).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from facepriv_core.errors import UnknownNameError
from facepriv_core.models import (
    catalog,  # noqa: F401  (registers the built-in entries)
    gate,
)
from facepriv_core.models.registry import (
    CARDS_DIR,
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


_GATE_CACHE: dict[str, Any] = {}


def gate_records() -> dict[str, dict[str, Any]]:
    """The recorded zoo-gate figures by model name, re-read when the file changes."""
    path = gate.gate_file(CARDS_DIR)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    if _GATE_CACHE.get("stamp") != stamp:
        _GATE_CACHE.update(stamp=stamp, records=gate.read_records(path))
    records: dict[str, dict[str, Any]] = _GATE_CACHE["records"]
    return records


def status(name: str, gated: bool = True) -> ModelStatus:
    """Whether `name` is offered here: it can load (its check) and, unless `gated` is False,
    its recorded zoo-gate figures pass."""
    e = entry(name)
    try:
        reason = e.check()
    except Exception as exc:  # a broken check must not break the listing
        reason = f"availability check failed: {exc}"
    records = gate_records()
    if reason is None and gated:
        reason = gate.reason_for(e.name, e.task, records)
    return ModelStatus(e.name, e.task, reason is None, reason, e.licence, e.source,
                       e.differentiable, e.summary, records.get(e.name))


def list_models(task: str | None = None) -> list[ModelStatus]:
    return [status(n) for n, e in sorted(ENTRIES.items()) if task in (None, e.task)]


def available(task: str | None = None) -> list[str]:
    return [s.name for s in list_models(task) if s.available]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for, else the best present (cuda > mps > cpu).

    A name torch does not know, or a device this machine lacks, is a DeviceError (typed, with
    what to use instead), not a failure deep inside the first tensor operation. Every run
    resolves its device here, so this is also where the calling thread's CPU float mode is
    set (subnormals flushed, see `float_mode.flush_denormals`)."""
    import torch

    from facepriv_core.float_mode import flush_denormals

    flush_denormals()
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


def get(name: str, device: str | torch.device | None = "cpu", *, gated: bool = True) -> Any:
    """The loaded model `name` on `device`, loaded once and cached. Availability is checked
    before loading only: a loaded model is in memory, and some checks read files.
    `gated=False` is for measuring the gate itself (bench/zoo_gate.py)."""
    dev = resolve_device(device)
    key = (name, str(dev))
    with _LOCK:
        cached = _CACHE.get(key)
    # A cached model is returned without re-running its file check; the gate alone is
    # re-read (a stat), since a model loaded ungated for measuring may fail it.
    if cached is not None:
        if gated and (why := gate.reason_for(name, entry(name).task, gate_records())):
            raise ModelUnavailableError(f"model '{name}' is unavailable: {why}")
        return cached
    st = status(name, gated=gated)
    if not st.available:
        raise ModelUnavailableError(f"model '{name}' is unavailable: {st.reason}")
    with _LOCK:
        if key not in _CACHE:
            module_name, func_name = ENTRIES[name].loader.split(":")
            loader = getattr(importlib.import_module(module_name), func_name)
            _CACHE[key] = loader(dev, *ENTRIES[name].loader_args)
        return _CACHE[key]
