"""Seconds per face of PMT at the demo defaults and the paper preset, batch 1 and 16.

Target on CPU: demo under 3 s per face at batch 16. Inputs are SFHQ chips when the sample is at
../shared/data/sfhq (aligned as the tests do), else uniform noise images of the same size (the
cost does not depend on the content). One timed run each: optimising defences are slow.

    python bench/bench_pmt.py [--device auto] [--paper-steps 500]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_data import sfhq_chips

from facepriv_core import defences, models
from facepriv_core.defences.pmt import Pmt


def seconds_per_face(params: object, x: torch.Tensor) -> float:
    d = defences.get("pmt", device=str(x.device))
    t = time.perf_counter()
    d.protect(x, params, torch.Generator(device=x.device).manual_seed(0))
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / len(x)


def forward_seconds_per_face(x: torch.Tensor) -> float:
    """Reference measured in the same run: one dlib-resnet embedding per face at this batch."""
    net = models.get("dlib-resnet", x.device)
    with torch.no_grad():
        net.embed(x)  # warm-up
        t = time.perf_counter()
        net.embed(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--paper-steps", type=int, default=None,
                    help="time the paper preset with fewer steps and scale (CPU runs are long)")
    args = ap.parse_args()
    device = models.resolve_device(args.device)
    x = sfhq_chips(16)
    source = "SFHQ chips"
    if x is None:
        x, source = torch.rand(16, 3, 150, 150, generator=torch.Generator().manual_seed(0)), \
            "noise images"
    x = x.to(device)
    presets = {"demo": Pmt.Params(), "paper": Pmt.paper_params()}
    ref = forward_seconds_per_face(x)
    print(f"PMT seconds per face on {device} ({source}); target on CPU: demo < 3 s at batch 16")
    print(f"reference: one dlib-resnet forward, batch 16: {ref:.4f} s per face")
    print(f"{'preset':<8}{'steps':>6}{'batch 1':>10}{'batch 16':>10}{'b16 / forward':>15}")
    for name, params in presets.items():
        scale = 1.0
        if name == "paper" and args.paper_steps:
            scale = params.steps / args.paper_steps
            params = params.model_copy(update={"steps": args.paper_steps})
        row = [scale * seconds_per_face(params, x[:b]) for b in (1, 16)]
        note = f"  (timed at {params.steps} steps, scaled)" if scale != 1 else ""
        print(f"{name:<8}{round(params.steps * scale):>6}{row[0]:>10.3f}{row[1]:>10.3f}"
              f"{row[1] / ref:>15.0f}{note}")


if __name__ == "__main__":
    main()
