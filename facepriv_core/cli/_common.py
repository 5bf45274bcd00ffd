"""Helpers every verb shares: output, --set parsing, audit specs from flags."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from facepriv_core.errors import UsageError

__all__ = ["UsageError", "add_audit_flags", "audit_spec_from_args", "parse_sets", "print_out"]


def print_out(obj: object, as_json: bool) -> None:
    """JSON with --json, else indented `key: value` lines with units (no Python reprs)."""
    if as_json:
        print(json.dumps(obj, indent=2, sort_keys=False))
        return
    for line in render_lines(obj):
        print(line)


def format_value(key: str, value: object) -> str:
    """A scalar for people: floats to 4 significant digits, seconds and bytes with units."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "n/a"}[value]
    if isinstance(value, int | float) and key.endswith("_s"):
        return f"{value:.2f} s"
    if isinstance(value, int) and key.endswith("bytes"):
        size = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(format_value(key, v) for v in value) or "none"
    return str(value)


def render_lines(obj: object, indent: int = 0) -> list[str]:
    """Nested dicts and lists as indented lines; lists of rows as `- ` items."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            nested = isinstance(value, dict) or (
                isinstance(value, list) and any(isinstance(v, dict | list) for v in value))
            if nested and value:
                lines.append(f"{pad}{key}:")
                lines.extend(render_lines(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {format_value(str(key), value)}")
    elif isinstance(obj, list):
        for item in obj:
            sub = render_lines(item, indent + 1)
            if sub:
                lines.append(f"{pad}- {sub[0].strip()}")
                lines.extend(sub[1:])
    else:
        lines.append(f"{pad}{format_value('', obj)}")
    return lines


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """--set k=v pairs into a dict; pydantic converts the values to each field's type."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def audit_spec_from_args(args: argparse.Namespace) -> Any:
    """An AuditSpec from --spec FILE.yaml, or from the flags (flags given override the file)."""
    from pathlib import Path

    import yaml

    from facepriv_core.audit import AuditSpec

    base: dict[str, Any] = {}
    if args.spec:
        path = Path(args.spec)
        if not path.is_file():
            raise UsageError(f"spec file '{path}' not found")
        base = yaml.safe_load(path.read_text()) or {}
    attack_params: dict[str, dict[str, str]] = {}
    for item in args.attack_set:
        name, dot, rest = item.partition(".")
        if not dot:
            raise UsageError(f"--attack-set expects NAME.key=value, got {item!r}")
        attack_params.setdefault(name, {}).update(parse_sets([rest]))
    flags: dict[str, Any] = {
        "defence": args.defence,
        "images": args.image or None,
        "dataset": args.dataset,
        "limit": args.limit,
        "seed": args.seed,
        "device": args.device,
    }
    spec = {**base, **{k: v for k, v in flags.items() if v is not None}}
    if args.set:
        spec["defence_params"] = {**spec.get("defence_params", {}), **parse_sets(args.set)}
    if args.attack:
        spec["attacks"] = [{"name": n, "params": attack_params.get(n, {})} for n in args.attack]
    if "defence" not in spec:
        raise UsageError("give --defence NAME or a --spec file that names one")
    return AuditSpec(**spec)


def add_audit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default=None, help="an audit spec in YAML (flags override it)")
    p.add_argument("--defence", default=None, help="registered defence name")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a defence parameter, repeatable")
    p.add_argument("--attack", action="append", default=[], help="an attack, repeatable")
    p.add_argument("--attack-set", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an attack parameter, repeatable")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", action="append", default=[], help="a photo, repeatable")
    src.add_argument("--dataset", default=None,
                     help="olivetti:PATH, folder:PATH, aligned:PATH, sfhq:PATH or lfw")
    p.add_argument("--limit", type=int, default=None, help="use at most N faces")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, mps or auto")
    p.add_argument("--out", default=None, help="folder for the result JSON and images")
    p.add_argument("--json", action="store_true", help="print JSON")
