"""Data abuse after PMT, like the paper's Table VII: authorised vs unauthorised recognisers.

PMT (Pu et al., "Facial Data Minimization: Shallow Model as Your Privacy Filter") claims the
obfuscated image stays recognisable to the authorised model whose shallow part it matches and
is useless to every other recogniser. Here PMT is authorised on dlib-resnet and the probe
images are scored by every available recogniser: rank-1 identification of each probe among a
clean gallery of the same people (Olivetti: probes are the first K photos of P people, the
gallery their remaining photos), for the clean probes and the PMT ones. Chance is 1 / P.

    python bench/pmt_data_abuse.py [--people 10] [--probes 3] [--steps N] [--preset demo|paper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_data import OLIVETTI

from facepriv_core import datasets, defences, metrics, models
from facepriv_core.faces import chips_to_tensor
from facepriv_core.verification import cosine, embed_chips


def olivetti_split(people: int, probes: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """(probe chips as a tensor, probe ids, gallery chips uint8, gallery ids)."""
    ds = datasets.load_olivetti(OLIVETTI / "olivettifaces.mat")
    ds = ds.subset(np.flatnonzero(ds.identities < people))
    aligned = datasets.align_dataset(ds)
    chips, ids = aligned.chips, ds.identities[aligned.indices]
    rank = np.array([np.sum(ids[:i] == ids[i]) for i in range(len(ids))])
    probe = rank < probes
    return chips_to_tensor(chips[probe]), ids[probe], chips[~probe], ids[~probe]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=10)
    ap.add_argument("--probes", type=int, default=3, help="probe photos per person")
    ap.add_argument("--preset", choices=("demo", "paper"), default="demo")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    ap.add_argument("--stage", default=None,
                    help="last dlib-resnet stage of E_c (default: the preset's, level4.0)")
    ap.add_argument("--native", action="store_true",
                    help="also score with dlib-native (the same network as dlib-resnet)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    if not (OLIVETTI / "olivettifaces.mat").is_file():
        raise SystemExit(f"needs {OLIVETTI / 'olivettifaces.mat'}")
    device = models.resolve_device(args.device)
    x, probe_ids, gallery, gallery_ids = olivetti_split(args.people, args.probes)
    pmt = defences.get("pmt", device=str(device))
    params = pmt.paper_params() if args.preset == "paper" else pmt.Params()
    if args.steps:
        params = params.model_copy(update={"steps": args.steps})
    if args.stage:
        params = params.model_copy(update={"stage": args.stage})
    start = time.perf_counter()
    protected = pmt.protect(x.to(device), params, torch.Generator(device=device).manual_seed(0))
    seconds = time.perf_counter() - start
    obfuscated = protected.image if protected.image is not None else protected.wire
    names = [n for n in models.available("recognition") if args.native or n != "dlib-native"]
    print(f"PMT ({args.preset}, {params.steps} steps, authorised dlib-resnet {params.stage}) on "
          f"{len(x)} Olivetti probes of {args.people} people, gallery {len(gallery)} clean "
          f"photos; {seconds / len(x):.2f} s per face on {device}. Chance {1 / args.people:.2f}.")
    print(f"{'recogniser':<16}{'role':<14}{'clean rank-1':>13}{'PMT rank-1':>12}"
          f"{'PMT cosine':>12}")
    for name in names:
        model = models.get(name, device)
        g = embed_chips(model, gallery, device=device)
        with torch.no_grad():
            clean = model.embed(x.to(device)).float().cpu().numpy()
            prot = model.embed(obfuscated.to(device)).float().cpu().numpy()
        acc_clean = np.nanmean(metrics.rank1_hits(clean, g, probe_ids, gallery_ids))
        acc_pmt = np.nanmean(metrics.rank1_hits(prot, g, probe_ids, gallery_ids))
        cos = np.mean(cosine(clean, prot))
        role = "authorised" if name == "dlib-resnet" else "unauthorised"
        print(f"{name:<16}{role:<14}{acc_clean:>13.3f}{acc_pmt:>12.3f}{cos:>12.3f}")


if __name__ == "__main__":
    main()
