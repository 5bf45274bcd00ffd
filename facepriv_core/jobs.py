"""Background jobs with progress, cancellation, device choice and a result cache.

Long work (attacks, optimising defences, training, dataset audits) runs as a job: `submit` a
function of a `JobContext`, get a `JobHandle` to poll (status, progress events with the latest
preview, result, error) and to cancel. Work cooperates with cancellation by calling
`ctx.check_cancel()` (or passing `ctx.cancelled` to attacks) between steps. Results are cached
by key (the spec hash), so the same audit asked twice runs once.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

from facepriv_core.attacks.base import AttackCancelled, ProgressEvent
from facepriv_core.cancel import check_cancel
from facepriv_core.defences.base import ProtectionCancelled
from facepriv_core.models.zoo import resolve_device


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED}


class JobCancelled(AttackCancelled):
    """Raised inside a job when its cancellation was requested."""


@dataclass
class JobContext:
    """What a running job sees: its device, a progress sink and the cancellation flag."""

    device: torch.device
    _handle: JobHandle

    def progress(self, event: ProgressEvent) -> None:
        self._handle._push(event)

    def report(self, step: int, total: int, phase: str = "", **metrics: float) -> None:
        self.progress(ProgressEvent(step=step, total=total, metrics=dict(metrics), phase=phase))

    def cancelled(self) -> bool:
        return self._handle._cancel.is_set()

    def check_cancel(self) -> None:
        check_cancel(self.cancelled, JobCancelled, "job cancelled")

    def partial(self, value: Any) -> None:
        """Keep a partial result: a failed or cancelled job still hands it back."""
        self._handle.partial = value


class JobHandle:
    """A submitted job. Thread-safe to poll from a UI while the worker runs."""

    def __init__(self, name: str, key: str | None, history: int = 200,
                 meta: dict[str, Any] | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.name = name
        self.key = key
        self.meta = meta or {}  # what the job ran on (spec, seed, inputs), for reports
        self.status = JobStatus.QUEUED
        self.result: Any = None
        self.partial: Any = None
        self.error: str | None = None
        self.error_detail: str | None = None
        self.events: deque[ProgressEvent] = deque(maxlen=history)
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._queue: Callable[[JobHandle], int | None] | None = None  # set by the runner

    def _push(self, event: ProgressEvent) -> None:
        with self._lock:
            self.events.append(event)

    @property
    def latest(self) -> ProgressEvent | None:
        with self._lock:
            return self.events[-1] if self.events else None

    @property
    def latest_preview(self) -> Any:
        with self._lock:
            return next((e.preview for e in reversed(self.events) if e.preview is not None),
                        None)

    @property
    def fraction(self) -> float:
        e = self.latest
        if self.status == JobStatus.DONE:
            return 1.0
        return min(1.0, e.step / e.total) if e and e.total else 0.0

    @property
    def queue_position(self) -> int | None:
        """1 for the next job to start, 2 after it...; None once running or finished."""
        if self.status != JobStatus.QUEUED or self._queue is None:
            return None
        return self._queue(self)

    @property
    def phase(self) -> str:
        """What the job is doing now, e.g. "training shadow decoder 2/20" (may be empty)."""
        e = self.latest
        return e.phase if e is not None else ""

    def cancel(self) -> None:
        self._cancel.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> JobStatus:
        self._done.wait(timeout)
        return self.status

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def __repr__(self) -> str:
        return f"JobHandle({self.name!r}, id={self.id}, status={self.status.value})"


class LocalRunner:
    """Runs jobs on background threads on the best device (cuda > mps > cpu) or a chosen one."""

    def __init__(self, workers: int = 1, device: str | torch.device | None = None) -> None:
        self.device = resolve_device(device)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facepriv-job")
        self._cache: dict[str, JobHandle] = {}
        self._lock = threading.Lock()
        self._waiting: list[JobHandle] = []  # queued jobs in submission order

    def submit(self, fn: Callable[[JobContext], Any], key: str | None = None, name: str = "job",
               meta: dict[str, Any] | None = None) -> JobHandle:
        """Queue fn(ctx). A key whose earlier job succeeded (or still runs) returns that job."""
        with self._lock:
            cached = self._cache.get(key) if key else None
            if cached is not None and cached.status not in (JobStatus.FAILED,
                                                            JobStatus.CANCELLED):
                return cached
            handle = JobHandle(name, key, meta=meta)
            handle._queue = self._position
            self._waiting.append(handle)
            if key:
                self._cache[key] = handle
        self._pool.submit(self._run, fn, handle)
        return handle

    def _position(self, handle: JobHandle) -> int | None:
        with self._lock:
            try:
                return self._waiting.index(handle) + 1
            except ValueError:
                return None

    def _run(self, fn: Callable[[JobContext], Any], handle: JobHandle) -> None:
        with self._lock:
            if handle in self._waiting:
                self._waiting.remove(handle)
        if handle._cancel.is_set():
            handle.status = JobStatus.CANCELLED
            handle._done.set()
            return
        handle.status = JobStatus.RUNNING
        handle.started = time.monotonic()
        try:
            handle.result = fn(JobContext(self.device, handle))
            handle.status = JobStatus.DONE
        except (AttackCancelled, ProtectionCancelled):
            handle.status = JobStatus.CANCELLED
        except Exception as exc:  # the job's error is its result: kept, shown, not raised
            handle.error = f"{type(exc).__name__}: {exc}"
            handle.error_detail = traceback.format_exc()
            handle.status = JobStatus.FAILED
        finally:
            handle.finished = time.monotonic()
            handle._done.set()

    def cached(self, key: str) -> JobHandle | None:
        with self._lock:
            return self._cache.get(key)

    def shutdown(self, cancel: bool = True) -> None:
        if cancel:
            with self._lock:
                for h in self._cache.values():
                    h.cancel()
        self._pool.shutdown(wait=False, cancel_futures=cancel)


_DEFAULT: LocalRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> LocalRunner:
    """The process-wide local runner (one worker: jobs share the CPU/GPU, they queue)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = LocalRunner()
        return _DEFAULT
