"""Naive vs parrot vs retrained vs classic de-anonymiser, for blur, pixelation and noise.

Usage: python bench/threat_scenarios.py [--olivetti-limit 80] [--aux-limit 100] [--seed 0]
           [--recognisers dlib-resnet] [--sfhq-limit 40]

(1) Olivetti (`--olivetti-limit` faces, seed 0), one audit per defence setting with every
attacker on the same protected faces: `identity` (naive: clean gallery),
`identity:scenario=parrot` (gallery protected with the public params, the attacker's own key),
`identity:scenario=retrained` (parrot plus a contrastive head per recogniser trained on
protected augmented views of `--aux-limit` SFHQ faces, none of them a victim) and the
de-anonymiser the defence's capabilities allow (`wiener_deblur` for blur, `superres` for
pixelation, `denoise` for noise). (2) Full-resolution SFHQ crops (colour, up to 384 px before
alignment; one photo per synthetic person, so the naive gallery holds each face's own clean
photo): the naive identity attack with every available recogniser except dlib-native.

Prints markdown; docs/reproduction.md holds one run's output.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from bench_data import OLIVETTI, SFHQ

from facepriv_core import audit, defences, models

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("blur", {"kernel": 21}),
    ("pixelate", {"block": 8}),
    ("pixelate", {"block": 16}),
    ("noise", {"sigma": 8.0}),
]
#: The de-anonymiser for each capability a defence may declare.
DEANONYMISERS = {"known_blur": "wiener_deblur", "known_blocks": "superres",
                 "known_noise": "denoise"}


def attackers(defence: str, recognisers: str, aux: str, aux_limit: int
              ) -> list[audit.AttackSpec]:
    common = {"recognisers": recognisers, "other_recognisers": False}
    specs = [
        audit.AttackSpec(name="identity", params=common),
        audit.AttackSpec(name="identity", label="parrot",
                         params={**common, "scenario": "parrot"}),
        audit.AttackSpec(name="identity", label="retrained",
                         params={**common, "scenario": "retrained", "aux": aux,
                                 "aux_limit": aux_limit}),
    ]
    caps = defences.get(defence).capabilities
    for cap, name in DEANONYMISERS.items():
        if cap in caps:
            specs.append(audit.AttackSpec(name=name, label="deanonymiser",
                                          params={"other_recognisers": False}))
    return specs


def olivetti_table(limit: int, aux_limit: int, seed: int, recognisers: str) -> list[str]:
    aux = f"sfhq:{SFHQ}"
    names = [n.strip() for n in recognisers.split(",") if n.strip()]
    head = "| defence | attacker | " + " | ".join(f"rank-1 {n}" for n in names) + \
        " | match rate (dlib-resnet) | pair cosine (dlib-resnet) | verdict |"
    lines = [head, "|" + "---|" * (5 + len(names))]
    for defence, params in SETTINGS:
        spec = audit.AuditSpec(defence=defence, defence_params=params,
                               dataset=f"olivetti:{OLIVETTI / 'olivettifaces.mat'}",
                               limit=limit, seed=seed, bootstrap=0,
                               attacks=attackers(defence, recognisers, aux, aux_limit))
        start = time.perf_counter()
        result = audit.run(spec)
        took = time.perf_counter() - start
        means = result.summary()["attacks"]
        setting = f"{defence} " + ", ".join(f"{k} {v:g}" for k, v in params.items())
        for a in spec.attacks:
            m = means[a.key]
            who = a.key if a.key != "deanonymiser" else f"de-anonymiser ({a.name})"
            verdict = result.verdicts.get(a.key)
            ranks = " | ".join(f"{m.get(f'rank1@{n}', float('nan')):.3f}" for n in names)
            lines.append(f"| {setting} | {who} | {ranks} | {m['match_rate']:.3f} | "
                         f"{m['cosine']:.3f} | "
                         f"{'leaks' if verdict and verdict.leaks else 'holds'} |")
        print("\n".join(lines[-len(spec.attacks):]) + f"\n<!-- {setting}: {took:.0f} s -->",
              file=sys.stderr, flush=True)  # rows as they come, in case the run is cut short
    return lines


def sfhq_table(limit: int, seed: int) -> list[str]:
    from facepriv_core.audit.runner import Faces
    from facepriv_core.train.aux_faces import load_aux

    chips, keys, _ = load_aux(f"sfhq:{SFHQ}", limit, seed)
    faces = Faces(chips, np.arange(len(chips)), keys, {})
    names = [n for n in models.available("recognition") if n != "dlib-native"]
    lines = ["| defence | " + " | ".join(f"rank-1 {n}" for n in names) + " |",
             "|" + "---|" * (1 + len(names))]
    for defence, params in [("none", {}), *SETTINGS]:
        spec = audit.AuditSpec(defence=defence, defence_params=params, dataset=f"sfhq:{SFHQ}",
                               seed=seed, bootstrap=0,
                               attacks=[audit.AttackSpec(name="identity",
                                                         params={"recognisers": ",".join(names)})])
        means = audit.run(spec, faces=faces).summary()["attacks"]["identity"]
        setting = f"{defence} " + ", ".join(f"{k} {v:g}" for k, v in params.items())
        lines.append(f"| {setting} | " + " | ".join(f"{means[f'rank1@{n}']:.3f}" for n in names)
                     + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--olivetti-limit", type=int, default=80)
    p.add_argument("--aux-limit", type=int, default=100)
    p.add_argument("--sfhq-limit", type=int, default=40)
    p.add_argument("--recognisers", default="dlib-resnet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    lines: list[str] = []
    if args.olivetti_limit:  # 0 skips the Olivetti table
        lines += [f"### Olivetti, {args.olivetti_limit} faces: every attacker on the same "
                  "protected faces", ""]
        lines += olivetti_table(args.olivetti_limit, args.aux_limit, args.seed,
                                args.recognisers)
    if args.sfhq_limit:
        lines += ["", f"### Full-resolution SFHQ, {args.sfhq_limit} faces (naive attacker, "
                      "rank-1 against each face's clean photo among all of them)", ""]
        lines += sfhq_table(args.sfhq_limit, args.seed)
    lines += ["", f"({time.perf_counter() - start:.0f} s in total)"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
