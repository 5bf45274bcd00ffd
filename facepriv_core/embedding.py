"""One batched forward pass for every embedding (and attribute) loop in the project.

Attacks, audits, sweeps, verification and trainers all push many faces through one model.
`embed_batched` is the only place that does it: faces streamed in batches (uint8 chips are
converted one batch at a time, so memory follows the batch, not the dataset), no autograd,
progress and cancel between batches, and the device's memory limits handled once: a CUDA
out-of-memory error halves the batch and retries, and at batch 1 the model moves to the CPU,
each time with a message on the `facepriv` logger.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from facepriv_core.cancel import Cancel, Cancelled, check_cancel
from facepriv_core.float_mode import flush_denormals

log = logging.getLogger("facepriv")

Progress = Callable[[int, int], None]
Faces = np.ndarray | torch.Tensor


class EmbeddingCancelled(Cancelled):
    """A batched forward pass stopped because cancellation was requested."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an accelerator's out-of-memory error (CUDA, MPS, ...)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _batch(faces: Faces, start: int, end: int, device: torch.device) -> torch.Tensor:
    if isinstance(faces, np.ndarray):
        from facepriv_core.faces.types import chips_to_tensor

        return chips_to_tensor(faces[start:end], device)
    return faces[start:end].to(device)


def _model_device(model: Any, fallback: torch.device) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        pass
    try:
        return next(model.buffers()).device
    except (AttributeError, StopIteration, TypeError):
        return fallback


def _on_cpu(model: Any) -> Any:
    """A CPU instance of `model`, leaving the device one (maybe cached, shared) untouched."""
    name = getattr(model, "name", None)
    if isinstance(name, str):
        from facepriv_core import models

        try:
            return models.get(name, "cpu")
        except Exception:  # not a zoo model under that name: copy it
            pass
    return copy.deepcopy(model).to("cpu") if hasattr(model, "to") else model


def embed_batched(model: Any, chips: Faces, batch: int = 32,
                  device: str | torch.device | None = None, progress: Progress | None = None,
                  cancel: Cancel | None = None,
                  fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
                  error: type[Cancelled] = EmbeddingCancelled) -> torch.Tensor:
    """`fn(model, x)` (default `model.embed(x)`) over `chips` in batches, concatenated.

    `chips` are uint8 NHWC dlib chips (a NumPy array, converted per batch) or a float NCHW
    tensor. The result is float32 on the device the work ran on (the model's, unless an
    out-of-memory fallback moved it to the CPU). Cancelling raises `error` (attacks pass
    their own Cancelled subclass)."""
    call = fn or (lambda m, x: m.embed(x))
    n = len(chips)
    dev = torch.device(device) if device is not None else _model_device(model, torch.device("cpu"))
    size = max(1, int(batch))
    out: list[torch.Tensor] = []
    start = 0
    flush_denormals()
    with torch.no_grad():
        while start < n:
            check_cancel(cancel, error, "cancelled")
            end = min(start + size, n)
            try:
                y = call(model, _batch(chips, start, end, dev)).float()
            except RuntimeError as exc:
                if not is_out_of_memory(exc) or dev.type == "cpu":
                    raise
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                if size > 1:
                    size = max(1, size // 2)
                    log.warning("out of memory on %s: retrying with batches of %d", dev, size)
                else:
                    log.warning("out of memory on %s even at batch 1: continuing on the CPU",
                                dev)
                    dev = torch.device("cpu")
                    model = _on_cpu(model)
                    out = [o.to(dev) for o in out]
                continue
            out.append(y.to(out[0].device) if out else y)
            start = end
            if progress:
                progress(start, n)
    if not out:
        return torch.zeros((0, 0))
    return torch.cat(out)


def embed_numpy(model: Any, chips: Faces, batch: int = 32,
                device: str | torch.device | None = None, progress: Progress | None = None,
                cancel: Cancel | None = None,
                fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
                error: type[Cancelled] = EmbeddingCancelled) -> np.ndarray:
    """`embed_batched` as a float32 NumPy array on the host."""
    return embed_batched(model, chips, batch, device, progress, cancel, fn, error).cpu().numpy()
