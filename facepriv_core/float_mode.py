"""The CPU float mode FacePriv computes in: subnormal numbers flushed to zero.

A leaf module: every run sets it where it resolves its device (`models.resolve_device`) and
every batched forward where it starts (`embedding.embed_batched`), in the calling thread.
"""

from __future__ import annotations

import torch


def flush_denormals() -> None:
    """Treat subnormal floats as zero in this thread's CPU arithmetic.

    Activations that decay towards zero (Cydral age's ONNX net, fer's Keras net on smooth or
    pixelated faces) fall into the subnormal range, where x86 arithmetic is ~100x slower:
    measured on the idle 2-core CPU, batch 32, cydral-age 9.1 -> 0.7 ms/face, fer-emotion
    1.6 -> 1.0. The values change by less than 1.2e-38 (the readers already flush subnormal
    weights, formats/subnormal.py; onnxruntime sessions do the same)."""
    torch.set_flush_denormal(True)
