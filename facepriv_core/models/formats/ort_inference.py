"""Gradient-free forwards of a compiled graph handed to onnxruntime (the audit's hot loop).

Audits embed and classify every face with up to eight networks and need no gradients there.
Measured on the 2-core CPU (batch 32, same run, see docs/performance.md), onnxruntime runs the
npm TF.js graphs about 2x faster than the fused torch plan they are exported from (faceres
9.3 -> ~4.5 ms/face, gear 14 -> ~7, mobileface 0.8 -> ~0.15): its CPU kernels fuse and lay out
depthwise convolutions better than eager torch. Attacks that need gradients keep the torch
plan: this path is taken only when no input requires a gradient, on CPU float32 tensors.

The plan is exported once per (graph, outputs, input shape) with torch's ONNX exporter,
checked against the torch plan on that first batch, and the ONNX bytes are cached on disk
under `<cache root>/onnx/` (keyed by a digest of the graph's structure and weights and the
library versions), so a later process only builds the session.
Any failure to export or load falls back to the torch plan, logged once on the `facepriv`
logger. Networks rebuilt in torch from other formats (Cydral's ONNX graphs, fer's Keras HDF5)
take the same path through `forward`: exported from their torch form, they run 2-6x faster
in onnxruntime than in eager torch (idle 2-core CPU, batch 32: fer-emotion 1.34 -> 0.23
ms/face, cydral-age 0.78 -> 0.40; Cydral's shipped age graph itself runs at 3.3 there).
`FACEPRIV_INFERENCE=torch` turns the path off (for comparisons and debugging).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facepriv_core.cache import cache_root, write_atomic

log = logging.getLogger("facepriv")
ENV_BACKEND = "FACEPRIV_INFERENCE"
#: Bump when the export changes in a way that makes cached ONNX files stale.
EXPORT_FORMAT = 1


def enabled() -> bool:
    """onnxruntime inference unless FACEPRIV_INFERENCE=torch, and only if it is installed."""
    if os.environ.get(ENV_BACKEND, "").strip().lower() == "torch":
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def applies(inputs: Sequence[torch.Tensor]) -> bool:
    """True for a forward that needs no gradient, on CPU float32 inputs."""
    if not inputs:
        return False
    grads = torch.is_grad_enabled() and any(x.requires_grad for x in inputs)
    return not grads and all(x.device.type == "cpu" and x.dtype == torch.float32
                             for x in inputs)


class SessionCache:
    """Sessions of one module. Neither copied nor pickled: a deep copy (the CPU fallback) or a
    Ray worker rebuilds its own from the disk cache."""

    def __init__(self) -> None:
        self.sessions: dict[Any, OrtForward | None] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionCache:
        return SessionCache()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.sessions = {}


#: Faces per onnxruntime run. Its CPU arena keeps the largest activations it has served:
#: ~600 MB for faceres or gear at 32 faces, a quarter at 8. Measured on the 2-core CPU
#: (same run, alternating): ms/face faceres 16.2-16.7 at 32 vs 14.3-14.8 at 8, gear
#: 18.3-18.6 vs 17.8-18.1; RSS after all seven default models 1778 MB vs 949 MB.
RUN_FACES = 8


_ARENA_LOCK = threading.Lock()
_arena_registered = False


def _shared_arena(ort: Any) -> bool:
    """One CPU arena for every session of the process (thread-safe; an audit runs its
    models one at a time, so it holds only the largest one's activations): each session's
    own arena would keep its largest activations for good. Measured on the 2-core CPU,
    400-face audit: peak RSS 1413-1442 -> 1261-1272 MB, faces/s within the noise.
    False where onnxruntime cannot register it (each session then keeps its own)."""
    global _arena_registered
    with _ARENA_LOCK:
        if not _arena_registered:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            except Exception as exc:  # an onnxruntime without shared allocators
                log.info("onnxruntime sessions keep their own arenas (%s)", type(exc).__name__)
                return False
            _arena_registered = True
        return True


class OrtForward:
    """One exported plan as an onnxruntime session: arrays in, named tensors out."""

    def __init__(self, onnx: bytes | str, input_names: list[str], output_keys: list[str]
                 ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if _shared_arena(ort):
            options.add_session_config_entry("session.use_env_allocators", "1")
        # subnormal weights make kernels ~100x slower; the torch readers flush them too
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        # no busy-waiting between runs: torch's kernels run in between (preprocessing, the
        # torch-run models) on the same cores; idle 2-core CPU, 100-face audit 6.4 -> 6.15 s
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx, options,
                                            providers=["CPUExecutionProvider"])
        self.input_names, self.output_keys = input_names, output_keys

    def __call__(self, inputs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        arrays = [np.ascontiguousarray(x.detach().numpy()) for x in inputs]
        n = len(arrays[0])
        step = RUN_FACES
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, step) or [0]:  # an empty batch still runs once
            feed = {name: a[start:start + step]
                    for name, a in zip(self.input_names, arrays, strict=True)}
            parts.append(self.session.run(None, feed))
        outs = [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_keys))]
        return {k: torch.from_numpy(np.asarray(v)) for k, v in zip(self.output_keys, outs,
                                                                   strict=True)}


def digest(parts: Sequence[bytes | str]) -> str:
    """Cache key from the graph's structure and weights, its outputs, shapes and versions."""
    import onnxruntime as ort

    h = hashlib.sha256()
    for p in [f"v{EXPORT_FORMAT}", torch.__version__, ort.__version__, *parts]:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:24]


def _export(fn: Callable[..., dict[str, torch.Tensor]], examples: Sequence[torch.Tensor],
            output_keys: list[str]) -> bytes:
    """ONNX bytes of `fn` traced on `examples`, the batch axis left dynamic."""

    class Wrapped(torch.nn.Module):
        def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = fn(*xs)
            return tuple(out[k] for k in output_keys)

    names = [f"in{i}" for i in range(len(examples))]
    outs = [f"out{i}" for i in range(len(output_keys))]
    axes = {n: {0: "batch"} for n in names + outs}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapped(), tuple(examples), buf,  # type: ignore[arg-type]
                          input_names=names,
                          output_names=outs, dynamic_axes=axes, opset_version=17,
                          dynamo=False)
    return buf.getvalue()


def _cached_path(key: str) -> Path:
    return cache_root() / "onnx" / f"plan-{key}.onnx"


#: Largest |onnxruntime - torch| allowed on the first batch, relative to the output's scale.
AGREEMENT = 1e-4


def build(key: str, fn: Callable[..., dict[str, torch.Tensor]],
          examples: Sequence[torch.Tensor], output_keys: list[str], label: str
          ) -> tuple[OrtForward | None, dict[str, torch.Tensor]]:
    """(session, outputs for `examples`). A session in the disk cache was checked when it was
    exported (the key names the graph, outputs, shapes and library versions) and is used as
    it is; otherwise the plan is exported now and kept only if its outputs on `examples`
    agree with the torch plan's, else None (the caller keeps the torch plan). The outputs are
    the session's when it is kept, so every batch, the first included, comes from the same
    engine: a process's first batch must not differ from a later run's."""
    path = _cached_path(key)
    names = [f"in{i}" for i in range(len(examples))]
    if path.is_file():
        try:
            session = OrtForward(path.read_bytes(), names, output_keys)
            return session, session(examples)
        except Exception as exc:  # a damaged cache file: export it again
            log.info("cached ONNX plan %s unusable (%s); exporting it again", path.name,
                     type(exc).__name__)
    with torch.no_grad():
        want = fn(*examples)
    try:
        data = _export(fn, [x.detach()[:2] for x in examples], output_keys)
        session = OrtForward(data, names, output_keys)
        got = session(examples)
        for k in output_keys:
            scale = float(want[k].abs().max()) or 1.0
            err = float((got[k] - want[k]).abs().max()) / scale
            if not err <= AGREEMENT:
                raise ValueError(f"output {k!r} differs from the torch plan by {err:.1e}")
        if not write_atomic(path, data):
            log.info("could not cache the ONNX plan at %s", path)
        return session, got
    except Exception as exc:  # any exporter/runtime refusal: the torch plan still works
        log.info("onnxruntime path not used for %s (%s: %s); using the torch plan", label,
                 type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        return None, want


def source_digest(*modules: Any) -> str:
    """Digest of the Python source of the modules that build a torch network: part of the
    cache key of its export, so a change to the converter never reuses a stale plan."""
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def run_cached(cache: SessionCache, key: Any, key_parts: Callable[[], Sequence[bytes | str]],
               fn: Callable[..., dict[str, torch.Tensor]], inputs: Sequence[torch.Tensor],
               output_keys: list[str], label: str) -> dict[str, torch.Tensor]:
    """`fn(*inputs)` from the session `cache` holds under `key` (output set, input shapes),
    built on first use by `build`; a key whose export was refused runs `fn` in torch.
    `key_parts` (called once per key) name the network's weights and code for the disk
    cache."""
    if key not in cache.sessions:
        session, out = build(digest([*key_parts(), repr(key)]), fn, inputs, output_keys, label)
        cache.sessions[key] = session
        return out
    session = cache.sessions[key]
    return fn(*inputs) if session is None else session(inputs)


def forward(cache: SessionCache, key_parts: Callable[[], Sequence[bytes | str]],
            fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, label: str
            ) -> torch.Tensor:
    """`fn(x)` for a single-input, single-output torch network: from an onnxruntime session
    of its export where the path applies (no gradient, CPU float32, not turned off), else
    from torch. One session per input shape (`run_cached`)."""
    if not (applies([x]) and enabled()) or len(x) == 0:  # nothing to export a plan from
        return fn(x)
    return run_cached(cache, tuple(x.shape[1:]), key_parts, lambda t: {"y": fn(t)}, [x],
                      ["y"], label)["y"]
