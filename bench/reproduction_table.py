"""Reproduction check against the seed papers' qualitative findings; prints markdown.

Usage: python bench/reproduction_table.py [--olivetti PATH] [--sfhq PATH]
           [--olivetti-limit 80] [--sfhq-limit 10] [--steps 200] [--seed 0]

(a) FaceMix (Liu, Wu, Zhu, Gan, Han) baselines: the identity attack (authorised recogniser,
rank-1 identification and pairwise match at the Olivetti threshold) on Olivetti faces
protected by noise, blur and pixelation; the checks say whether the ranking goes the papers'
way. (b) PMT (Pu et al., "Facial Data Minimization: Shallow Model as Your Privacy Filter"):
white-box inversion of unprotected `split` features on SFHQ faces and its SRRA. Paths default
to ../shared/data (or $FACEPRIV_TEST_DATA). docs/reproduction.md is this script's output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_data import DATA

from facepriv_core import audit, metrics
from facepriv_core.attacks.identity import AUTHORISED, DEFAULT_THRESHOLDS

#: (defence, params, family) in the FaceMix tables' order, weakest first within a family.
SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("none", {}, "none"),
    ("noise", {"sigma": 4.0}, "noise"),
    ("noise", {"sigma": 8.0}, "noise"),
    ("blur", {"kernel": 9}, "blur"),
    ("blur", {"kernel": 21}, "blur"),
    ("pixelate", {"block": 8}, "pixelate"),
    ("pixelate", {"block": 16}, "pixelate"),
]
RATES = ("rank1", "match_rate")


def ranking(olivetti: Path, limit: int, seed: int = 0) -> list[dict[str, Any]]:
    """Identity-attack rates (mean rank1, match_rate, cosine) per defence setting."""
    rows = []
    for name, params, family in SETTINGS:
        spec = audit.AuditSpec(
            defence=name, defence_params=params, dataset=f"olivetti:{olivetti}", limit=limit,
            seed=seed, bootstrap=0,
            attacks=[audit.AttackSpec(name="identity", params={"other_recognisers": False})])
        result = audit.run(spec)
        means = result.summary()["attacks"]["identity"]
        rows.append({"defence": name, "params": params, "family": family,
                     "n": len(result.rows), "utility_cosine": result.utility["utility_cosine"].mean,
                     **{k: means[k] for k in (*RATES, "cosine")}})
    return rows


def ranking_checks(rows: list[dict[str, Any]], rate: str) -> dict[str, str]:
    """The FaceMix direction for one rate: noise leaks at least as much as any blur or
    pixelation setting, and within blur and pixelation the weaker setting leaks more. A tie in
    the rate (both saturated) counts when the attacker's mean cosine still orders the pair."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_family.setdefault(row["family"], []).append(row)
    others = by_family["blur"] + by_family["pixelate"]

    def weaker_leaks_more(weak: dict[str, Any], strong: dict[str, Any]) -> str:
        if weak[rate] > strong[rate]:
            return "yes"
        if weak[rate] == strong[rate] and weak["cosine"] > strong["cosine"]:
            return "tie (cosine: yes)"
        return "NO"

    noise_most = min(r[rate] for r in by_family["noise"]) >= max(r[rate] for r in others)
    return {
        "noise leaks most": "yes" if noise_most else "NO",
        "weaker blur leaks more (kernel 9 vs 21)": weaker_leaks_more(*by_family["blur"]),
        "weaker pixelation leaks more (block 8 vs 16)": weaker_leaks_more(*by_family["pixelate"]),
    }


def split_inversion(sfhq: Path, limit: int, steps: int, seed: int = 0,
                    stage: str = "level4.0", defence: str = "split",
                    defence_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """White-box inversion of the shallow features a defence sends (unprotected `split`, or
    PMT's features upload): mean ssim and cosine, and SRRA at dlib-resnet's threshold."""
    spec = audit.AuditSpec(
        defence=defence, defence_params=defence_params or {"stage": stage},
        dataset=f"sfhq:{sfhq}", limit=limit, seed=seed, bootstrap=0,
        attacks=[audit.AttackSpec(name="whitebox_inversion", params={"steps": steps})])
    result = audit.run(spec)
    cos = np.array([r["whitebox_inversion.cosine"] for r in result.rows])
    means = result.summary()["attacks"]["whitebox_inversion"]
    return {"n": len(cos), "defence": defence, "stage": stage,
            "steps": steps, "ssim": means["ssim"], "cosine": means["cosine"],
            "srra": metrics.srra(cos, DEFAULT_THRESHOLDS[AUTHORISED]),
            "seconds": result.timings["attack_whitebox_inversion_s"]}


def pmt_inversion(sfhq: Path, limit: int, steps: int, seed: int = 0,
                  stage: str = "level4.0") -> dict[str, Any]:
    """The same attack on PMT's features upload (demo preset): E_c(x~) is what leaves."""
    return split_inversion(sfhq, limit, steps, seed, stage, defence="pmt",
                           defence_params={"stage": stage, "upload": "features"})


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in params.items()) or "-"


def ranking_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [f"### (a) Identity attack on Olivetti ({rows[0]['n']} faces)", "",
             "| defence | params | rank-1 identification | match rate @0.921 | cosine "
             "| utility cosine |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['defence']} | {_params(r['params'])} | {r['rank1']:.3f} | "
              f"{r['match_rate']:.3f} | {r['cosine']:.3f} | {r['utility_cosine']:.3f} |"
              for r in rows]
    lines += ["", "| FaceMix direction | by rank-1 | by match rate |", "|---|---|---|"]
    checks = {rate: ranking_checks(rows, rate) for rate in RATES}
    lines += [f"| {claim} | {checks['rank1'][claim]} | {checks['match_rate'][claim]} |"
              for claim in checks["rank1"]]
    return "\n".join(lines)


def inversion_markdown(*inversions: dict[str, Any]) -> str:
    lines = [f"### (b) White-box inversion of shallow features on SFHQ "
             f"({inversions[0]['n']} faces)", "",
             "| defence | stage | steps | SSIM | dlib cosine | SRRA @0.921 | attack seconds |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['defence']} | {r['stage']} | {r['steps']} | {r['ssim']:.3f} | "
              f"{r['cosine']:.3f} | {r['srra']:.2f} | {r['seconds']:.0f} |" for r in inversions]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--olivetti", type=Path, default=DATA / "olivetti" / "olivettifaces.mat")
    parser.add_argument("--sfhq", type=Path, default=DATA / "sfhq")
    parser.add_argument("--olivetti-limit", type=int, default=80)
    parser.add_argument("--sfhq-limit", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200, help="white-box inversion steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = ranking(args.olivetti, args.olivetti_limit, args.seed)
    inversion = split_inversion(args.sfhq, args.sfhq_limit, args.steps, args.seed)
    pmt = pmt_inversion(args.sfhq, args.sfhq_limit, args.steps, args.seed)
    print(ranking_markdown(rows) + "\n\n" + inversion_markdown(inversion, pmt))
    print(f"\n(generated in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
