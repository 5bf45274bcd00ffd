"""Progress reporting for long command-line work: a bar on a terminal, silence otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable


def terminal_progress(label: str) -> Callable[[int, int], None]:
    """A (done, total) callback drawing a tqdm bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return lambda done, total: None
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
        b = bar["bar"]
        b.update(done - b.n)
        if done >= total:
            b.close()

    return update
