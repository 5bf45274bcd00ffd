"""Race heads against SFHQ's ethnicity weak labels, per class.

SFHQ's ethnicity labels are the prompts its grids were searched with (weak labels), mapped to
UTKFace's classes as `human_specs.RACE_LABEL_OF_SFHQ` says. Chance is 1/5 per face.

    python bench/race_agreement.py [--model gear-race] [--all-grids]
"""

from __future__ import annotations

import argparse
import collections
import csv

import numpy as np
import torch
from bench_data import SFHQ

from facepriv_core import faces, models
from facepriv_core.models.human_specs import RACE_LABEL_OF_SFHQ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gear-race")
    ap.add_argument("--all-grids", action="store_true",
                    help="also the age grids' asian / african rows, not just the ethnicity grid")
    args = ap.parse_args()
    if not (SFHQ / "manifest.csv").is_file():
        raise SystemExit(f"needs the SFHQ sample at {SFHQ}")
    with open(SFHQ / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["ethnicity"] in RACE_LABEL_OF_SFHQ
                and (args.all_grids or r["grid"] == "SFHQ_variability_ethnicity")]
    model = models.get(args.model)
    per_class: dict[str, list[bool]] = collections.defaultdict(list)
    confusion: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for row in rows:
        try:
            face = faces.detect_and_align(faces.load_image(SFHQ / row["file"]))
        except faces.InputError:
            continue
        with torch.no_grad():
            p = model.probabilities(faces.chips_to_tensor(face.chip150))[0]
        got = model.labels[int(p.argmax())]
        want = RACE_LABEL_OF_SFHQ[row["ethnicity"]]
        per_class[row["ethnicity"]].append(got == want)
        confusion[row["ethnicity"]][got] += 1
    print(f"{args.model} on SFHQ ({'all grids' if args.all_grids else 'ethnicity grid'}); "
          "chance 0.20")
    print(f"{'SFHQ prompt':<16}{'as':<8}{'faces':>6}{'agree':>7}  predicted")
    for eth, hits in per_class.items():
        counts = ", ".join(f"{k} {v}" for k, v in confusion[eth].most_common())
        print(f"{eth:<16}{RACE_LABEL_OF_SFHQ[eth]:<8}{len(hits):>6}{np.mean(hits):>7.2f}  "
              f"{counts}")
    every = [h for hits in per_class.values() for h in hits]
    print(f"{'all':<24}{len(every):>6}{np.mean(every):>7.2f}")


if __name__ == "__main__":
    main()
