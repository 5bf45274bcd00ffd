"""Background jobs: progress, cancellation within 2 s, errors kept, results cached by key."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facepriv_core.attacks.base import ProgressEvent
from facepriv_core.jobs import JobContext, JobStatus, LocalRunner


@pytest.fixture()
def runner() -> LocalRunner:
    r = LocalRunner(workers=2, device="cpu")
    yield r
    r.shutdown()


def slow_count(ctx: JobContext, steps: int = 1000, dt: float = 0.01) -> int:
    for i in range(steps):
        ctx.check_cancel()
        ctx.progress(ProgressEvent(i + 1, steps, preview=np.zeros((2, 2, 3), np.uint8)))
        ctx.partial(i)
        time.sleep(dt)
    return steps


def test_progress_and_result(runner: LocalRunner) -> None:
    h = runner.submit(lambda ctx: slow_count(ctx, 20, 0.005), name="count")
    assert h.wait(10) == JobStatus.DONE
    assert h.result == 20 and h.latest.step == 20 and h.fraction == 1.0
    assert h.latest_preview is not None and h.elapsed > 0


def test_cancel_stops_within_two_seconds(runner: LocalRunner) -> None:
    h = runner.submit(slow_count)
    deadline = time.monotonic() + 30.0  # a loaded machine may start the worker late
    while h.latest is None:
        assert time.monotonic() < deadline, f"no progress within 30 s (status {h.status})"
        time.sleep(0.01)
    t0 = time.monotonic()
    h.cancel()
    assert h.wait(2.0) == JobStatus.CANCELLED
    assert time.monotonic() - t0 < 2.0
    assert h.partial is not None and h.result is None


def test_error_is_kept_with_partial_results(runner: LocalRunner) -> None:
    def boom(ctx: JobContext) -> None:
        ctx.partial({"done": 3})
        raise RuntimeError("the model exploded")

    h = runner.submit(boom)
    assert h.wait(5) == JobStatus.FAILED
    assert "the model exploded" in h.error and h.partial == {"done": 3}
    assert "Traceback" in h.error_detail and "Traceback" not in h.error


def test_same_key_is_served_from_cache(runner: LocalRunner) -> None:
    calls = []

    def work(ctx: JobContext) -> int:
        calls.append(1)
        return 42

    a = runner.submit(work, key="spec-abc")
    a.wait(5)
    b = runner.submit(work, key="spec-abc")
    assert b is a and b.result == 42 and len(calls) == 1
    c = runner.submit(work, key="spec-other")
    c.wait(5)
    assert len(calls) == 2


def test_failed_job_is_retried_not_cached(runner: LocalRunner) -> None:
    attempts = []

    def flaky(ctx: JobContext) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return "ok"

    first = runner.submit(flaky, key="k")
    first.wait(5)
    second = runner.submit(flaky, key="k")
    assert second is not first and second.wait(5) == JobStatus.DONE and second.result == "ok"


def test_queued_jobs_know_their_place_and_running_ones_their_phase() -> None:
    """One worker: the 2nd and 3rd jobs wait in line (positions 1, 2); the running one says
    what it is doing; positions move up as jobs finish."""
    import threading

    runner = LocalRunner(workers=1)
    gate = threading.Event()

    def blocking(ctx) -> str:
        ctx.report(2, 3, phase="training shadow decoder 2/3")
        gate.wait(10)
        return "done"

    first = runner.submit(blocking)
    second = runner.submit(lambda ctx: "second")
    third = runner.submit(lambda ctx: "third")
    deadline = time.time() + 5
    while first.phase == "" and time.time() < deadline:
        time.sleep(0.01)
    assert first.queue_position is None and first.phase == "training shadow decoder 2/3"
    assert (second.queue_position, third.queue_position) == (1, 2)
    gate.set()
    third.wait(5)
    assert [h.result for h in (first, second, third)] == ["done", "second", "third"]
    assert third.queue_position is None
    runner.shutdown()


def test_report_progress_passes_phase_and_preview_only_to_callbacks_that_take_them() -> None:
    from facepriv_core.defences.base import report_progress

    made: list[int] = []

    def preview() -> np.ndarray:
        made.append(1)
        return np.zeros((2, 2, 3), np.uint8)

    two: list[tuple] = []
    three: list[tuple] = []
    four: list[tuple] = []
    report_progress(lambda s, t: two.append((s, t)), 1, 5, "optimising 1/5", preview)
    assert two == [(1, 5)] and not made  # no preview made for a callback that cannot take it
    report_progress(lambda s, t, ph: three.append((s, t, ph)), 2, 5, "optimising 2/5", preview)
    assert three == [(2, 5, "optimising 2/5")] and not made
    report_progress(lambda s, t, ph, pv: four.append((s, t, ph, pv.shape)), 3, 5, "x", preview)
    assert four == [(3, 5, "x", (2, 2, 3))] and made == [1]
    report_progress(None, 4, 5, "ignored", preview)  # no callback: nothing happens
