"""Audit throughput: faces/s of a dataset audit against one batched dlib-resnet forward per face.

Usage:
  python bench/bench_audit.py [--limits 100,400] [--runners local,ray1,ray2] [--device cpu]
                              [--synthetic 1000,13000] [--synthetic-attacks identity]
                              [--synthetic-all-recognisers]

The audit is the one issue 14 times:
  facepriv audit --defence pixelate --set block=8 --attack identity --attack attribute
      --dataset olivetti:../shared/data/olivetti/olivettifaces.mat --limit N
A warm-up audit of a few faces runs first, in its own process, so the machine's disk caches
hold the exported onnxruntime plans (made once per machine, on first use). Then each
configuration runs in a fresh process (models load once there, as in a CLI call) that
reports its wall time, its CPU time (user + system of the process; Ray workers are other
processes, so CPU time is given for the local runner only) and its peak RSS. The reference,
measured in the same run and the same way, is dlib-resnet's batched forward (batch 32) over
the same chips: the practical ceiling. On a shared machine wall time follows the load; the
ratio columns compare like with like (wall with wall, CPU with CPU) measured minutes apart.

--synthetic N[,M...] audits N faces made in memory by augmenting SFHQ crops (mirror, shifts,
gamma, noise), pixelate block=8, identity with dlib-resnet only (and any other attacks named
by --synthetic-attacks, with their default models), to show that peak memory stays flat as
the dataset grows (LFW has 13,233 faces): the uint8 chips (67.5 KB a face) are the only part
that grows. "RSS faces MB" is the process after making the chips, before the audit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLIVETTI = os.environ.get("FACEPRIV_TEST_DATA", str(ROOT.parent / "shared" / "data"))
DATASET = f"olivetti:{OLIVETTI}/olivetti/olivettifaces.mat"


#: Faces of the warm-up audit run before the table: it fills the disk caches that every later
#: process reads (onnxruntime plans, decoded graphs), so the rows measure a machine's usual
#: audit, not its first one.
WARMUP_FACES = 10


def _usage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": r.ru_utime + r.ru_stime, "rss_mb": r.ru_maxrss / 1024}


def child_reference(n: int, device: str) -> dict[str, float]:
    """dlib-resnet batched forward over n aligned Olivetti chips (after one warm-up batch)."""
    from facepriv_core import datasets, models
    from facepriv_core.embedding import embed_batched

    ds = datasets.load(DATASET).limit(n, seed=0)
    chips = datasets.align_dataset(ds).chips
    model = models.get("dlib-resnet", device)
    embed_batched(model, chips[:32], 32, device)
    before, t = _usage(), time.perf_counter()
    embed_batched(model, chips, 32, device)
    wall = time.perf_counter() - t
    return {"faces": len(chips), "wall_s": wall, "cpu_s": _usage()["cpu_s"] - before["cpu_s"],
            "rss_mb": _usage()["rss_mb"]}


def child_audit(n: int, runner: str, device: str) -> dict[str, float]:
    from facepriv_core.audit import AttackSpec, AuditSpec
    from facepriv_core.runners import get_runner

    spec = AuditSpec(defence="pixelate", defence_params={"block": 8}, dataset=DATASET,
                     limit=n, device=device,
                     attacks=[AttackSpec(name="identity"), AttackSpec(name="attribute")])
    workers = int(runner[3:]) if runner.startswith("ray") else None
    before, t = _usage(), time.perf_counter()
    with get_runner("ray" if workers else "local", workers=workers) as r:
        result = r.audit(spec)
    wall = time.perf_counter() - t
    return {"faces": len(result.rows), "wall_s": wall,
            "cpu_s": _usage()["cpu_s"] - before["cpu_s"], "rss_mb": _usage()["rss_mb"],
            "timings": result.timings}  # type: ignore[dict-item]


def synthetic_faces(n: int) -> object:
    """n faces from the single-face SFHQ crops, each view a seeded augmentation."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_data import sfhq_chips

    from facepriv_core.audit import Faces
    from facepriv_core.faces import tensor_to_chips

    base = sfhq_chips(16)
    if base is None:
        raise SystemExit("the SFHQ sample is missing: --synthetic needs ../shared/data/sfhq")
    src = tensor_to_chips(base)
    rng = np.random.default_rng(0)
    out = np.empty((n, *src.shape[1:]), np.uint8)
    for i in range(n):
        img = src[i % len(src)].astype(np.float32)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        dy, dx = rng.integers(-4, 5, 2)
        img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
        img = 255.0 * (img / 255.0) ** rng.uniform(0.8, 1.25) + rng.normal(0, 3, img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    ids = np.arange(n) % len(src)
    return Faces(out, ids, [f"synthetic-{i}" for i in range(n)], {})


def child_synthetic(n: int, attacks: list[str], device: str, all_recognisers: bool = False
                    ) -> dict[str, float]:
    from facepriv_core.audit import AttackSpec, AuditSpec, runner

    faces = synthetic_faces(n)
    rss_faces = _usage()["rss_mb"]
    spec = AuditSpec(defence="pixelate", defence_params={"block": 8}, images=["synthetic"],
                     device=device, bootstrap=100,
                     attacks=[AttackSpec(name=a, params={"other_recognisers": False}
                                         if a == "identity" and not all_recognisers else {})
                              for a in attacks])
    before, t = _usage(), time.perf_counter()
    result = runner.run(spec, faces=faces)  # type: ignore[arg-type]
    return {"faces": len(result.rows), "wall_s": time.perf_counter() - t,
            "cpu_s": _usage()["cpu_s"] - before["cpu_s"], "rss_mb": _usage()["rss_mb"],
            "rss_faces_mb": rss_faces}


def spawn(*args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limits", default="100,400")
    p.add_argument("--runners", default="local,ray1,ray2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--synthetic", default="",
                   help="also audit N synthetic faces (comma-separated counts: 1000,13000)")
    p.add_argument("--synthetic-attacks", default="identity")
    p.add_argument("--synthetic-all-recognisers", action="store_true",
                   help="synthetic audits: the identity attack with its default recognisers "
                        "(default: the authorised dlib-resnet only)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "reference":
            out = child_reference(int(rest[0]), args.device)
        elif kind == "audit":
            out = child_audit(int(rest[0]), rest[1], args.device)
        else:
            out = child_synthetic(int(rest[0]), [a for a in rest[1].split(",") if a],
                                  args.device, rest[2:] == ["all"])
        print(json.dumps(out))
        return

    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}, load average at start: {load:.1f}"
          + (" (shared machine: wall times follow the load)" if load > 1.5 else ""))
    warm = spawn("audit", str(WARMUP_FACES), "local")
    print(f"warm-up: a {WARMUP_FACES}-face audit in {warm['wall_s']:.1f} s (on a machine's first "
          "run this includes exporting the onnxruntime plans and decoding the ONNX graphs "
          "into the cache, once)")
    header = (f"{'configuration':34s} {'faces':>6s} {'faces/s':>8s} {'x dlib wall':>12s} "
              f"{'CPU ms/face':>12s} {'x dlib CPU':>11s} {'peak RSS MB':>12s}")
    print(header)
    print("-" * len(header))
    for limit in [int(v) for v in args.limits.split(",") if v]:
        ref = spawn("reference", str(limit))
        ref_wall, ref_cpu = ref["wall_s"] / ref["faces"], ref["cpu_s"] / ref["faces"]
        print(f"{'dlib-resnet forward (batch 32)':34s} {ref['faces']:6.0f} "
              f"{1 / ref_wall:8.1f} {1.0:12.1f} {1000 * ref_cpu:12.1f} {1.0:11.1f} "
              f"{ref['rss_mb']:12.0f}")
        for runner in [r for r in args.runners.split(",") if r]:
            row = spawn("audit", str(limit), runner)
            wall, cpu = row["wall_s"] / row["faces"], row["cpu_s"] / row["faces"]
            cpu_cols = (f"{1000 * cpu:12.1f} {cpu / ref_cpu:11.1f}" if runner == "local"
                        else f"{'(workers)':>12s} {'':>11s}")
            print(f"{'audit ' + runner + f' --limit {limit}':34s} {row['faces']:6.0f} "
                  f"{1 / wall:8.1f} {wall / ref_wall:12.1f} {cpu_cols} {row['rss_mb']:12.0f}",
                  flush=True)
    for count in [int(v) for v in args.synthetic.split(",") if v]:
        extra = ["all"] if args.synthetic_all_recognisers else []
        row = spawn("synthetic", str(count), args.synthetic_attacks, *extra)
        label = args.synthetic_attacks + (" (all rec.)" if extra else "")
        print(f"{'synthetic ' + label:34s} {row['faces']:6.0f} "
              f"{row['faces'] / row['wall_s']:8.1f} {'':>12s} "
              f"{1000 * row['cpu_s'] / row['faces']:12.1f} {'':>11s} {row['rss_mb']:12.0f}"
              f"   (RSS faces MB {row['rss_faces_mb']:.0f})", flush=True)


if __name__ == "__main__":
    main()
