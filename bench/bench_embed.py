"""Faces per second: dlib's ResNet in torch (batch 1 and 32) against native dlib, same chips.

Usage: python bench/bench_embed.py [--reps 3] [--threads N] [--device cpu]

The chips are the astronaut's plus single-face SFHQ chips from ../shared/data (or
$FACEPRIV_TEST_DATA) where present, else the astronaut's repeated. The ratio column is
per-face throughput against native dlib measured in the same run; the last column is the
lowest cosine between the torch and the native descriptors of the same chips.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable

import numpy as np
import torch
from bench_data import DATA
from skimage import data, io

from facepriv_core.faces.types import chips_to_tensor
from facepriv_core.models.dlib_native import DlibNative
from facepriv_core.models.dlib_resnet import load_dlib_resnet

BATCH = 32


def bench_chips(native: DlibNative, n: int = BATCH) -> tuple[np.ndarray, str]:
    """n chips: the astronaut's, then single-face SFHQ chips (else the astronaut's again)."""
    chips = [native.face_chips(data.astronaut())[0]]
    manifest = DATA / "sfhq" / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as f:
            names = sorted(row["file"] for row in csv.DictReader(f))
        for name in names:
            if len(chips) == n:
                break
            found = native.face_chips(io.imread(manifest.parent / name))
            if len(found) == 1:
                chips.append(found[0])
    source = f"astronaut + {len(chips) - 1} SFHQ" if len(chips) > 1 else "astronaut repeated"
    while len(chips) < n:
        chips.append(chips[0])
    return np.stack(chips), source


def per_face_seconds(fn: Callable[[], object], faces: int, reps: int) -> float:
    """Best of `reps` timed runs after one warm-up, per face."""
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's own choice)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    native = DlibNative()
    chips, source = bench_chips(native)
    model = load_dlib_resnet(args.device)
    x = chips_to_tensor(chips, args.device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    model_cl = load_dlib_resnet(args.device).to(memory_format=torch.channels_last)

    def sync() -> None:
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    def torch_run(m: torch.nn.Module, inputs: torch.Tensor, batch: int) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for i in range(0, len(inputs), batch):
                    m(inputs[i:i + batch])
            sync()

        return run

    native_s = per_face_seconds(lambda: native.embed_chips(chips), len(chips), args.reps)
    with torch.inference_mode():
        ours = model(x).cpu()
    ref = native.embed_chips(chips)
    min_cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1).min().item()

    rows = [("dlib native (C++, one list call)", native_s)]
    for label, m, inputs in (("torch", model, x), ("torch channels_last", model_cl, x_cl)):
        for batch in (1, BATCH):
            rows.append((f"{label}, batch {batch}",
                         per_face_seconds(torch_run(m, inputs, batch), len(chips), args.reps)))

    print(f"chips: {len(chips)} ({source}); torch {torch.__version__} on {args.device}, "
          f"{torch.get_num_threads()} threads; min cosine torch vs native {min_cos:.7f}")
    print(f"{'model':<34} {'faces/s':>9} {'ms/face':>9} {'x native':>9}")
    for label, seconds in rows:
        print(f"{label:<34} {1 / seconds:>9.1f} {1000 * seconds:>9.2f} "
              f"{native_s / seconds:>9.2f}")


if __name__ == "__main__":
    main()
