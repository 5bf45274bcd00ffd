"""The one training loop behind every trainer: step, progress, cancel, checkpoint.

A trainer supplies its batches and a function that turns one batch into a loss; the loop does
the optimiser bookkeeping, reports progress(step, total, loss) after every step, checks the
cancel request after every step (so a run always makes at least one step and stops after the
current one), and calls an optional checkpoint callback every `checkpoint_every` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from facepriv_core.cancel import Cancel, cancelled

TrainProgress = Callable[[int, int, float], None]
B = TypeVar("B")


@dataclass(frozen=True)
class LoopResult:
    """What the loop did: steps taken, whether a cancel request stopped it, each step's loss."""

    steps: int
    cancelled: bool
    losses: tuple[float, ...]

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


def train_loop(
    batches: Iterable[B],
    step: Callable[[B], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    total: int,
    scheduler: Any = None,
    progress: TrainProgress | None = None,
    cancel: Cancel | None = None,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    first_step: int = 1,
) -> LoopResult:
    """Run `step` over `batches` with `optimizer` (and `scheduler`, stepped after it).

    `total` is what progress reports as the number of steps; `first_step` numbers the first
    step (for a loop resumed in parts, e.g. one call per epoch). Each step runs with gradients
    enabled whatever the caller's mode (a defence that trains a shadow model inside a
    no_grad protect, as benches and previews call it).
    """
    losses: list[float] = []
    number = first_step - 1
    for batch in batches:
        with torch.enable_grad():  # training needs gradients even when the caller is in no_grad
            loss = step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        number += 1
        losses.append(float(loss.detach()))
        if progress:
            progress(number, total, losses[-1])
        if checkpoint is not None and checkpoint_every and number % checkpoint_every == 0:
            checkpoint(number)
        if cancelled(cancel):
            return LoopResult(len(losses), True, tuple(losses))
    return LoopResult(len(losses), False, tuple(losses))


def epoch_batches(n: int, batch_size: int, epochs: int, rng: np.random.Generator
                  ) -> Iterator[np.ndarray]:
    """Index batches over `epochs` passes of `n` items, reshuffled with `rng` at each epoch
    start, split into ceil(n / batch_size) nearly equal parts."""
    per_epoch = steps_per_epoch(n, batch_size)
    for _ in range(epochs):
        yield from np.array_split(rng.permutation(n), per_epoch)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many batches `epoch_batches` makes per pass over `n` items."""
    return -(-n // batch_size)


def save_checkpoint(ckpt: dict[str, Any], out: str | Path) -> Path:
    """Write a checkpoint dict with torch.save, creating its folder; return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
