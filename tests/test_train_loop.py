"""The one training loop: it learns, it stops on cancel, and it trains under no_grad too."""

from __future__ import annotations

import torch

from facepriv_core.train.loop import train_loop


def _problem() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return torch.nn.Linear(4, 1), x, y


def _fit(steps: int, cancel: object = None) -> tuple[object, list[float]]:
    net, x, y = _problem()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen: list[float] = []
    result = train_loop(range(steps), lambda _b: ((net(x) - y) ** 2).mean(), opt, total=steps,
                        progress=lambda _n, _t, loss: seen.append(loss), cancel=cancel)
    return result, seen


def test_loop_learns_and_reports_each_step() -> None:
    result, seen = _fit(50)
    assert len(seen) == 50 and seen[-1] < 0.01 * seen[0]
    assert not result.cancelled


def test_loop_trains_inside_a_callers_no_grad() -> None:
    """A defence training its shadow model inside protect() may be called under no_grad."""
    with torch.no_grad():
        _result, seen = _fit(20)
    assert seen[-1] < 0.1 * seen[0]


def test_loop_stops_after_the_step_that_saw_cancel() -> None:
    result, seen = _fit(50, cancel=lambda: True)
    assert result.cancelled and len(seen) == 1
