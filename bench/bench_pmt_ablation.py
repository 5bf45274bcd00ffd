"""Ablation of PMT's enhanced perturbation, like the paper's Table X: authorised cosine and
relative shallow-feature distance for the 8 on/off combinations of augmentation (noise + affine),
translation-invariant gradients (Gaussian kernel) and layer aggregation, on the same SFHQ
faces at the demo steps. Also the pixel SSIM to the original, the privacy side.

    python bench/bench_pmt_ablation.py [--faces 8] [--steps 80] [--device auto]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from bench_data import sfhq_chips

from facepriv_core import defences, metrics, models
from facepriv_core.faces import tensor_to_chips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="default: the demo steps")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = models.resolve_device(args.device)
    x = sfhq_chips(args.faces)
    if x is None:
        raise SystemExit("needs the SFHQ sample at ../shared/data/sfhq")
    x = x.to(device)
    d = defences.get("pmt", device=str(device))
    demo = d.Params()
    steps = args.steps or demo.steps
    originals = tensor_to_chips(x)
    print(f"PMT ablation: {len(x)} SFHQ faces, {steps} steps, stage {demo.stage}, {device}")
    print(f"{'augment':>8}{'TI':>4}{'aggr':>6}{'cosine':>9}{'feat dist':>11}{'SSIM':>7}")
    for aug, ti, agg in itertools.product((False, True), repeat=3):
        params = demo.model_copy(update={
            "steps": steps, "augment": "both" if aug else "none",
            "ti_kernel": "gaussian" if ti else "none", "aggregate": agg})
        p = d.protect(x, params, torch.Generator(device=device).manual_seed(0))
        ssim = np.mean([metrics.ssim(a, b) for a, b in zip(originals, p.preview, strict=True)])
        m = p.metrics
        print(f"{'on' if aug else 'off':>8}{'on' if ti else 'off':>4}{'on' if agg else 'off':>6}"
              f"{m['authorised_cosine']:>9.4f}{m['feature_distance']:>11.4f}{ssim:>7.3f}")


if __name__ == "__main__":
    main()
