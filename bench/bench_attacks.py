"""Attack throughput on the device present, against one dlib-resnet forward pass per image.

Usage: python bench/bench_attacks.py [--device auto] [--reps 2] [--steps 10] [--threads N]

Rows: white-box inversion of `split` features (iterations per second at batch 1 and 16,
timed between two progress events so set-up and scoring are excluded), and the attribute and
identity attacks on a blurred batch of 16 (images per second, identity with and without the
other recognisers). The reference, measured in the same run, is dlib-resnet's forward pass on
the same chips at batch 16; the last column is each row's cost per image in such passes.
Chips are SFHQ faces from ../shared/data (or $FACEPRIV_TEST_DATA) when present, else
uniform noise from a fixed seed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from bench_data import sfhq_chips

from facepriv_core import attacks, defences, models
from facepriv_core.attacks import AttackCase, ProgressEvent

BATCH = 16


def bench_chips(n: int = BATCH) -> tuple[torch.Tensor, str]:
    """n chips (N, 3, 150, 150): single-face SFHQ crops where present, else seeded noise."""
    chips = sfhq_chips(n)
    if chips is not None:
        return chips, f"{n} SFHQ faces"
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 150, 150, generator=gen), f"{n} noise chips (seed 0)"


def case_for(x: torch.Tensor, name: str, **params: object) -> AttackCase:
    d = defences.get(name, device=str(x.device))
    p = d.Params(**params)
    return AttackCase(original=x, protected=d.protect(x, p, torch.Generator(x.device)),
                      defence=d, defence_params=p)


def best_seconds(fn: Callable[[], object], reps: int, sync: Callable[[], None]) -> float:
    """Best of `reps` timed calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def whitebox_rate(x: torch.Tensor, steps: int, reps: int, sync: Callable[[], None]) -> float:
    """Iterations per second: `steps` steps between the progress events at steps and 2 steps."""
    attack = attacks.get("whitebox_inversion", device=str(x.device))
    case = case_for(x, "split")
    params = attack.Params(steps=2 * steps, report_every=steps)
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms up
        stamps: list[float] = []

        def stamp(event: ProgressEvent, _stamps: list[float] = stamps) -> None:
            sync()
            _stamps.append(time.perf_counter())

        attack.run(case, params, progress=stamp)
        best = min(best, stamps[1] - stamps[0])
    return steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="white-box steps timed")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = models.resolve_device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    x, source = bench_chips()
    x = x.to(device)
    net = models.get("dlib-resnet", device)

    def reference() -> None:
        with torch.no_grad():
            net(x)

    ref_rate = BATCH / best_seconds(reference, args.reps, sync)
    # (label, rate, images per unit of rate)
    rows: list[tuple[str, float, int]] = [("dlib-resnet forward (reference)", ref_rate, 1)]
    for batch in (1, BATCH):
        rate = whitebox_rate(x[:batch], args.steps, args.reps, sync)
        rows.append((f"white-box inversion, split, batch {batch} (it/s)", rate, batch))
    blurred = case_for(x, "blur", kernel=9)
    attribute = attacks.get("attribute", device=str(device))
    rows.append(("attribute attack (img/s)", BATCH / best_seconds(
        lambda: attribute.run(blurred, attribute.Params(batch_size=BATCH)), args.reps, sync),
                 1))
    identity = attacks.get("identity", device=str(device))
    for others in (False, True):
        params = identity.Params(other_recognisers=others)
        seconds = best_seconds(lambda p=params: identity.run(blurred, p), args.reps, sync)
        rows.append((f"identity attack, other recognisers {'on' if others else 'off'} (img/s)",
                     BATCH / seconds, 1))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"chips: {source}; torch {torch.__version__} on {name}, "
          f"{torch.get_num_threads()} threads; best of {args.reps}")
    print(f"{'row':<58} {'rate':>9} {'ms/img':>9} {'x dlib fwd':>10}")
    for label, rate, per in rows:
        per_image_s = 1 / (rate * per)
        print(f"{label:<58} {rate:>9.2f} {1000 * per_image_s:>9.2f} "
              f"{per_image_s * ref_rate:>10.1f}")


if __name__ == "__main__":
    main()
