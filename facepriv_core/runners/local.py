"""The local runner: everything in this process, models cached by the zoo."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from facepriv_core.runners.base import Cancel, Progress, Runner


class LocalRunner(Runner):
    name = "local"

    def audit(self, spec: Any, progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None) -> Any:
        from facepriv_core.audit import runner

        return runner.run(spec, progress=progress, cancel=cancel, faces=faces)

    def sweep(self, spec: Any, param: str, values: Sequence[Any],
              progress: Progress | None = None, cancel: Cancel | None = None,
              faces: Any = None, reference: bool = False) -> Any:
        from facepriv_core.audit import runner

        return runner.sweep(spec, param, values, progress=progress, cancel=cancel, faces=faces,
                            reference=reference)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)
