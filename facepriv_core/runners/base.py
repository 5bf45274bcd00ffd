"""The runner interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

Progress = Callable[[str, int, int], None]
Cancel = Callable[[], bool]


class Runner(ABC):
    """Runs audits, sweeps and single units of work somewhere; same numbers everywhere."""

    name: str

    @abstractmethod
    def audit(self, spec: Any, progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None) -> Any:
        """An AuditResult for `spec` (faces: already-aligned faces to use instead)."""

    @abstractmethod
    def sweep(self, spec: Any, param: str, values: Sequence[Any],
              progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None, reference: bool = False) -> Any:
        """A SweepResult: one audit per value of a defence parameter (`reference`: and the
        no-defence audit of the same faces)."""

    @abstractmethod
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` as one unit of work (fn importable by name, args picklable)."""

    def close(self) -> None:
        """Release what the runner holds (a Ray connection); the local runner holds nothing."""
        return None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
