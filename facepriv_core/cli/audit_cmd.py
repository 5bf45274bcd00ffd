"""`facepriv audit` and `facepriv sweep`: audits from flags or a YAML spec."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from facepriv_core.cli._common import (
    UsageError,
    add_audit_flags,
    audit_spec_from_args,
    print_out,
    runner_from_args,
)


def write_outputs(folder: str, result: Any) -> None:
    """--out: the result JSON and the original, protected and reconstructed PNGs of the faces
    the result keeps (the first audit.runner.PREVIEW_FACES)."""
    from pathlib import Path

    from PIL import Image

    out = Path(folder)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(result.model_dump_json(indent=2))
    for name, batch in result.images.items():
        safe = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name)  # attack labels may hold ':' or '/'
        for i, img in enumerate(batch):
            Image.fromarray(img).save(out / "images" / f"{i:04d}_{safe}.png")


def cmd_audit(args: argparse.Namespace) -> int:
    from facepriv_core.progress import terminal_progress

    spec = audit_spec_from_args(args)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, terminal_progress(stage))(done, total)

    with runner_from_args(args) as runner:
        result = runner.audit(spec, progress=progress)
    if args.out:
        write_outputs(args.out, result)
    summary = result.summary()
    if args.json:
        print_out(summary, True)
    else:
        print("\n".join(verdict_lines(summary)))
        print_out({k: v for k, v in summary.items()
                   if k not in ("verdicts", "overall_verdict")}, False)
    return 0


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The verdicts as lines a person reads: the defence's one-liner, then one per attack."""
    from facepriv_core.verdicts import fmt

    overall = summary.get("overall_verdict", {})
    lines = [f"verdict: {overall.get('reason', '')}"]
    for attack, v in summary.get("verdicts", {}).items():
        badge = {"leaks": "LEAKS", "inconclusive": "inconclusive", "utility": "utility"}.get(
            v.get("status", ""), "no leak")
        direction = "higher" if v["higher_leaks"] else "lower"
        lines.append(f"  {attack}: {badge}: {v['reason']}")
        lines.append(f"    {v['metric']} = {fmt(v['value'])} (95% CI {fmt(v['ci'][0])}-"
                     f"{fmt(v['ci'][1])}), threshold {fmt(v['threshold'])} from "
                     f"{v['threshold_source']}; {direction} = more leakage")
    return lines


def _scalar(text: str) -> Any:
    """'8' -> 8, '0.5' -> 0.5, 'true' -> True; anything else stays text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_sweep(args: argparse.Namespace) -> int:
    from facepriv_core import audit
    from facepriv_core.progress import terminal_progress

    spec = audit_spec_from_args(args)
    values = [_scalar(v.strip()) for v in args.values.split(",") if v.strip()]
    if not values:
        raise UsageError("--values needs a comma-separated list, e.g. --values 1,4,8,16")
    bar = terminal_progress(f"sweep {args.param}")
    with runner_from_args(args) as runner:
        result = runner.sweep(spec, args.param, values, progress=lambda _s, d, t: bar(d, t))
        if args.reference:
            from facepriv_core.audit.runner import SweepPoint, no_defence_spec

            result.reference = SweepPoint.of("no defence", runner.audit(no_defence_spec(spec)))
    if args.out:
        from pathlib import Path

        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "sweep.json").write_text(result.model_dump_json(indent=2))
    curve = audit.curve_data(result)
    if args.json:
        print_out({**result.model_dump(), "curve": curve.model_dump()}, True)
        return 0
    from facepriv_core.verdicts import fmt

    print(f"sweep of {result.defence}.{result.param}: x = {curve.x_label}, "
          f"y = {curve.y_label}" + (f" (chance {fmt(curve.chance)})"
                                    if curve.chance is not None else ""))
    for p, cp in zip(result.points, curve.points, strict=True):
        verdict = p.overall_verdict.reason if p.overall_verdict else ""
        print(f"  {cp.label}: x={fmt(cp.x)} y={fmt(cp.y)}"
              + (f" ({cp.detail})" if cp.detail else "") + f"  {verdict}")
    if curve.reference is not None:
        print(f"  no defence: x={fmt(curve.reference.x)} y={fmt(curve.reference.y)}")
    if curve.caution:
        print(f"caution: {curve.caution}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    au = sub.add_parser("audit", help="protect faces, attack them, aggregate the results")
    add_audit_flags(au)
    au.set_defaults(func=cmd_audit)

    sw = sub.add_parser("sweep", help="audit over values of one defence parameter")
    add_audit_flags(sw)
    sw.add_argument("--param", required=True, help="the defence parameter to sweep")
    sw.add_argument("--values", required=True, help="comma-separated values")
    sw.add_argument("--reference", action="store_true",
                    help="also audit the faces with no defence (the curve's reference point)")
    sw.set_defaults(func=cmd_sweep)
