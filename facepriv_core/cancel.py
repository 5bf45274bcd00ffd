"""Asking long work to stop: one type for the request, one check, one exception root.

Jobs pass a threading.Event (or their `cancelled` method), the CLI passes nothing. Long loops
call `check_cancel` between steps; attacks and defences raise their own subclass of
`Cancelled` so callers can tell which kind of work stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Cancel = threading.Event | Callable[[], bool]


class Cancelled(RuntimeError):
    """Work stopped because cancellation was requested."""


def cancelled(cancel: Cancel | None) -> bool:
    """Whether the caller asked the work to stop (an Event that is set, or a callable's True)."""
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def check_cancel(cancel: Cancel | None, error: type[Cancelled] = Cancelled,
                 message: str = "cancelled") -> None:
    """Raise `error(message)` when the caller asked the work to stop."""
    if cancelled(cancel):
        raise error(message)
