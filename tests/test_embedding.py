"""embed_batched: batches, uint8 chips per batch, cancel, and the out-of-memory fallback
(exercised with a fake allocator error: the machines here have no GPU)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from facepriv_core import embedding
from facepriv_core.cancel import Cancelled
from facepriv_core.embedding import embed_batched, embed_numpy


class FakeModel:
    """Embeds by channel means; on 'cuda' it fails like an allocator beyond `fits` faces."""

    def __init__(self, device: str = "cuda", fits: int = 2) -> None:
        self.device, self.fits, self.seen = device, fits, []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.device, len(x)))
        if self.device == "cuda" and len(x) > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x.mean(dim=(2, 3))

    def to(self, device: str) -> FakeModel:
        return FakeModel(str(device), self.fits) if str(device) != self.device else self


def _chips(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)


def test_uint8_chips_embed_in_batches_like_one_pass() -> None:
    chips = _chips(10)
    model = FakeModel("cpu")
    got = embed_numpy(model, chips, batch=4, device="cpu")
    want = torch.from_numpy(chips).permute(0, 3, 1, 2).float().div(255).mean(dim=(2, 3))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
    assert [n for _, n in model.seen] == [4, 4, 2]


def test_out_of_memory_halves_the_batch_then_moves_to_cpu(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(embedding, "_batch", lambda faces, s, e, dev: faces[s:e].float())
    x = torch.rand(9, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = FakeModel("cuda", fits=2)
    with caplog.at_level(logging.WARNING, logger="facepriv"):
        got = embed_batched(model, x, batch=8, device="cuda")
    torch.testing.assert_close(got, x.mean(dim=(2, 3)))
    assert model.seen[:3] == [("cuda", 8), ("cuda", 4), ("cuda", 2)]
    assert "retrying with batches of 4" in caplog.text
    assert "retrying with batches of 2" in caplog.text

    never = FakeModel("cuda", fits=0)  # not even one face fits: the CPU takes over
    with caplog.at_level(logging.WARNING, logger="facepriv"):
        got = embed_batched(never, x, batch=4, device="cuda")
    torch.testing.assert_close(got, x.mean(dim=(2, 3)))
    assert "continuing on the CPU" in caplog.text


def test_other_errors_and_cpu_oom_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "_batch", lambda faces, s, e, dev: faces[s:e].float())
    x = torch.rand(3, 3, 4, 4)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        embed_batched(FakeModel("cuda", fits=0), x, batch=2, device="cpu")  # CPU: no fallback

    class Broken(FakeModel):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        embed_batched(Broken("cuda"), x, batch=2, device="cuda")


def test_cancel_between_batches() -> None:
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        embed_batched(FakeModel("cpu"), torch.rand(6, 3, 4, 4), batch=2,
                      cancel=lambda: next(calls))


def test_runs_compute_with_subnormals_flushed() -> None:
    """Subnormal activations cost ~100x on x86 (cydral-age 9.1 -> 0.7 ms/face): every run
    resolves its device, which sets the thread's float mode."""
    import torch

    from facepriv_core import models

    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
    if float(tiny * 1.0) == 0.0:
        pytest.skip("this CPU flushes subnormals already")
    models.resolve_device("cpu")
    assert float(tiny * 1.0) == 0.0
