"""Progress and cancellation shared by the trainers (jobs pass an Event, the CLI nothing)."""

from __future__ import annotations

import threading
from collections.abc import Callable

TrainProgress = Callable[[int, int, float], None]
Cancel = threading.Event | Callable[[], bool]


def cancelled(cancel: Cancel | None) -> bool:
    """Whether the caller asked the run to stop (an Event that is set, or a callable's True)."""
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())
