"""`facepriv audit` and `facepriv sweep`: audits from flags or a YAML spec."""

from __future__ import annotations

import argparse
import json
from typing import Any

from facepriv_core.cli._common import (
    UsageError,
    add_audit_flags,
    audit_spec_from_args,
    print_out,
)


def write_outputs(folder: str, result: Any) -> None:
    """--out: the result JSON and, per face, the original, protected and reconstructed PNGs."""
    from pathlib import Path

    from PIL import Image

    out = Path(folder)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(result.model_dump_json(indent=2))
    for name, batch in result.images.items():
        for i, img in enumerate(batch):
            Image.fromarray(img).save(out / "images" / f"{i:04d}_{name}.png")


def cmd_audit(args: argparse.Namespace) -> int:
    from facepriv_core import audit
    from facepriv_core.progress import terminal_progress

    spec = audit_spec_from_args(args)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, terminal_progress(stage))(done, total)

    result = audit.run(spec, progress=progress)
    if args.out:
        write_outputs(args.out, result)
    print_out(result.summary(), args.json)
    return 0


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
    result = audit.sweep(spec, args.param, values, progress=lambda _s, d, t: bar(d, t))
    if args.out:
        from pathlib import Path

        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "sweep.json").write_text(result.model_dump_json(indent=2))
    print_out(result.model_dump(), args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    au = sub.add_parser("audit", help="protect faces, attack them, aggregate the results")
    add_audit_flags(au)
    au.set_defaults(func=cmd_audit)

    sw = sub.add_parser("sweep", help="audit over values of one defence parameter")
    add_audit_flags(sw)
    sw.add_argument("--param", required=True, help="the defence parameter to sweep")
    sw.add_argument("--values", required=True, help="comma-separated values")
    sw.set_defaults(func=cmd_sweep)
