"""GPU time on Hugging Face ZeroGPU Spaces, and nothing anywhere else.

A ZeroGPU Space lends a GPU only while a function decorated with `spaces.GPU` runs. The
decorator below applies `spaces.GPU(duration=...)` when the `spaces` package is installed and
the runtime says it is ZeroGPU (`SPACES_ZERO_GPU` true); elsewhere (a laptop, a CPU Space, an
always-on GPU) it returns the function unchanged, and the engine picks the device per call
(cuda > mps > cpu).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_TRUE = {"1", "true", "yes", "on"}


def zero_gpu_runtime() -> bool:
    """True on a ZeroGPU Space (the platform sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in _TRUE


def gpu(duration: int = 60) -> Callable[[F], F]:
    """Decorator: hold a ZeroGPU GPU for at most `duration` seconds per call, else a no-op."""

    def wrap(fn: F) -> F:
        if not zero_gpu_runtime():
            return fn
        try:
            spaces = importlib.import_module("spaces")
        except ImportError:
            return fn
        wrapped: F = spaces.GPU(duration=duration)(fn)
        return wrapped

    return wrap
