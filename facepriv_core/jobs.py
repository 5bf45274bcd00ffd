"""Background jobs with progress, cancellation, device choice and a result cache.

Long work (attacks, optimising defences, training, dataset audits) runs as a job: `submit` a
function of a `JobContext`, get a `JobHandle` to poll (status, progress events with the latest
preview, result, error) and to cancel. Work cooperates with cancellation by calling
`ctx.check_cancel()` (or passing `ctx.cancelled` to attacks) between steps. Results are cached
by key (the spec hash), so the same audit asked twice runs once.

Jobs belong to a session (the app sets it per script run with `set_session`). Workers take
queued jobs round-robin across sessions, so one session's ten jobs do not hold back another
session's one, and a session may have at most `limits.session_jobs` jobs queued or running.
A failed job keeps a message in words for the user (`error`) and the traceback apart
(`error_detail`), for a debug view only.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch

from facepriv_core.attacks.base import AttackCancelled, ProgressEvent
from facepriv_core.cancel import check_cancel
from facepriv_core.defences.base import ProtectionCancelled
from facepriv_core.errors import FacePrivError
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


class JobLimitError(FacePrivError):
    """A session asked for more jobs at once than it may have queued or running."""


#: The session submitting jobs from this thread (the app sets it for each script run).
_SESSION: contextvars.ContextVar[str] = contextvars.ContextVar("facepriv_session",
                                                               default="local")


@contextlib.contextmanager
def session_scope(session: str) -> Iterator[None]:
    """Jobs submitted inside belong to `session` (for the fair queue and the per-session cap)."""
    token = _SESSION.set(session)
    try:
        yield
    finally:
        _SESSION.reset(token)


def set_session(session: str) -> None:
    """Jobs submitted from this thread from now on belong to `session`."""
    _SESSION.set(session)


def user_message(exc: BaseException, what: str = "The job") -> str:
    """What to tell the user about a failure: a FacePrivError's own message, a parameter
    error in one line, else a sentence that names no exception class."""
    from pydantic import ValidationError

    if isinstance(exc, FacePrivError):
        return str(exc)
    if isinstance(exc, ValidationError):
        from facepriv_core.validation import explain

        return f"Invalid parameters: {explain(exc)}"
    if isinstance(exc, MemoryError):
        return (f"{what} ran out of memory. Try fewer faces, a smaller image or a smaller "
                "batch.")
    detail = " ".join(str(exc).split())[:300]
    detail = f" ({detail})" if detail else ""
    return (f"{what} stopped on an unexpected error{detail}. This is a bug in FacePriv: try "
            "again, and report it if it happens again.")


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
                 meta: dict[str, Any] | None = None, session: str = "local") -> None:
        self.id = uuid.uuid4().hex[:12]
        self.name = name
        self.key = key
        self.session = session
        self.meta = meta or {}  # what the job ran on (spec, seed, inputs), for reports
        self.status = JobStatus.QUEUED
        self.result: Any = None
        self.partial: Any = None
        self.error: str | None = None  # the user's message, in words (no class names)
        self.error_detail: str | None = None  # the traceback, for a debug view only
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
    """Runs jobs on background threads on the best device (cuda > mps > cpu) or a chosen one.

    Queued jobs wait in one queue per session; a free worker serves the sessions in turn."""

    def __init__(self, workers: int = 1, device: str | torch.device | None = None,
                 session_jobs: int | None = None) -> None:
        self.device = resolve_device(device)
        self.workers = workers
        self._session_jobs = session_jobs
        self._cache: dict[str, JobHandle] = {}
        self._queues: dict[str, deque[tuple[Callable[[JobContext], Any], JobHandle]]] = {}
        self._turns: deque[str] = deque()  # sessions with queued jobs, in serving order
        self._active: dict[str, list[JobHandle]] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Condition()

    @property
    def session_jobs(self) -> int:
        from facepriv_core.limits import current

        return self._session_jobs if self._session_jobs is not None else current().session_jobs

    def submit(self, fn: Callable[[JobContext], Any], key: str | None = None, name: str = "job",
               meta: dict[str, Any] | None = None, session: str | None = None) -> JobHandle:
        """Queue fn(ctx). A key whose earlier job succeeded (or still runs) returns that job.
        Raises JobLimitError when the session already has its cap of unfinished jobs."""
        who = session if session is not None else _SESSION.get()
        with self._lock:
            if self._closed:
                raise RuntimeError("the runner is shut down")
            cached = self._cache.get(key) if key else None
            if cached is not None and cached.status not in (JobStatus.FAILED,
                                                            JobStatus.CANCELLED):
                return cached
            active = [h for h in self._active.get(who, []) if h.status not in FINISHED]
            if len(active) >= self.session_jobs:
                raise JobLimitError(
                    f"You already have {len(active)} job(s) queued or running (the limit is "
                    f"{self.session_jobs}): wait for one to finish or cancel it.")
            handle = JobHandle(name, key, meta=meta, session=who)
            handle._queue = self._position
            self._active[who] = [*active, handle]
            if key:
                self._cache[key] = handle
            if who not in self._queues or not self._queues[who]:
                self._queues[who] = deque()
                self._turns.append(who)
            self._queues[who].append((fn, handle))
            self._start_workers()
            self._lock.notify()
        return handle

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name=f"facepriv-job-{len(self._threads)}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _next(self) -> tuple[Callable[[JobContext], Any], JobHandle] | None:
        """The next job, taking sessions in turn (caller holds the lock)."""
        while self._turns:
            who = self._turns.popleft()
            queue = self._queues.get(who)
            if not queue:
                continue
            item = queue.popleft()
            if queue:
                self._turns.append(who)
            return item
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                item = self._next()
                while item is None and not self._closed:
                    self._lock.wait()
                    item = self._next()
                if item is None:
                    return
            self._run(*item)

    def position(self, handle: JobHandle) -> int | None:
        """How many queued jobs a worker will take before this one (None: not queued)."""
        with self._lock:
            if handle.status != JobStatus.QUEUED:
                return None
            queues = {w: list(q) for w, q in self._queues.items()}
            turns = list(self._turns)
        ahead = 0
        while turns:  # replay the round-robin without taking anything
            who = turns.pop(0)
            if not queues.get(who):
                continue
            _, h = queues[who].pop(0)
            if h is handle:
                return ahead
            ahead += 1
            if queues[who]:
                turns.append(who)
        return None

    def _position(self, handle: JobHandle) -> int | None:
        """1 for the next job a worker takes, 2 after it...; None when not queued."""
        ahead = self.position(handle)
        return None if ahead is None else ahead + 1

    def _run(self, fn: Callable[[JobContext], Any], handle: JobHandle) -> None:
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
            handle.error = user_message(exc, handle.name[:1].upper() + handle.name[1:])
            handle.error_detail = traceback.format_exc()
            handle.status = JobStatus.FAILED
        finally:
            handle.finished = time.monotonic()
            handle._done.set()

    def cached(self, key: str) -> JobHandle | None:
        with self._lock:
            return self._cache.get(key)

    def shutdown(self, cancel: bool = True) -> None:
        with self._lock:
            self._closed = True
            if cancel:
                for queue in self._queues.values():
                    for _, h in queue:
                        h.cancel()
                        h.status = JobStatus.CANCELLED
                        h._done.set()
                    queue.clear()
                for handles in self._active.values():
                    for h in handles:
                        h.cancel()
            self._lock.notify_all()


_DEFAULT: LocalRunner | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runner() -> LocalRunner:
    """The process-wide local runner (one worker: jobs share the CPU/GPU, they queue)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = LocalRunner()
        return _DEFAULT
