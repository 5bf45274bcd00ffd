"""Milliseconds per face for every registered defence at batch 1 and 64, on the device present.

The reference in the same run is one dlib-resnet forward pass per face (the recogniser the
service runs anyway): PPFR-FD's paper reports 2.23 ms for masking plus inference. Target: every
closed-form defence under 5 ms per face batched on CPU. Defences take 150x150 dlib chips (the
pipeline's input; PPFR-FD reduces them to its 112x112 grey face itself). Optimising defences
are timed at their demo defaults and marked. What is timed is the client's protect(): the
service's utility pass and the defences' diagnostics (decryption and keyless cosines) are
computed lazily, when read, and are not part of a face's protection cost.

    python bench/bench_defences.py [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from facepriv_core import defences, models


def best_ms_per_face(fn, n: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1000 * best / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-optimising", action="store_true")
    args = ap.parse_args()
    device = models.resolve_device(args.device)
    rec = models.get("dlib-resnet", device)
    x64 = torch.rand(64, 3, 150, 150, generator=torch.Generator().manual_seed(0)).to(device)
    batches = {1: x64[:1], 64: x64}

    rows = []
    with torch.inference_mode():
        ref = {b: best_ms_per_face(lambda x=x: rec(x), b, args.repeats)
               for b, x in batches.items()}
    rows.append(("dlib-resnet inference (reference)", "", ref[1], ref[64]))
    for name in defences.names():
        d = defences.get(name, device=str(device))
        if d.optimising and args.skip_optimising:
            continue
        params = d.Params()
        ms = {}
        for b, x in batches.items():
            def protect(x: torch.Tensor = x, d=d, params=params) -> None:
                with torch.no_grad():
                    d.protect(x, params, torch.Generator(device=device).manual_seed(0))
            ms[b] = best_ms_per_face(protect, b, 1 if d.optimising else args.repeats)
        rows.append((name, "optimising" if d.optimising else "closed-form", ms[1], ms[64]))

    print(f"device: {device}, threads: {torch.get_num_threads()}")
    print(f"{'defence':<36}{'kind':<13}{'ms/face b1':>11}{'ms/face b64':>12}"
          f"{'x ref b64':>10}{'<5ms b64':>9}")
    for name, kind, b1, b64 in rows:
        ok = "" if kind != "closed-form" else ("yes" if b64 < 5 else "NO")
        print(f"{name:<36}{kind:<13}{b1:>11.2f}{b64:>12.2f}{b64 / ref[64]:>10.2f}{ok:>9}")


if __name__ == "__main__":
    main()
