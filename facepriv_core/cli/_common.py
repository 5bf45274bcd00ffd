"""Helpers every verb shares: output, --set parsing, audit specs from flags."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from facepriv_core.errors import UsageError

__all__ = [
    "SEED_MAX",
    "UsageError",
    "add_audit_flags",
    "add_detector_flags",
    "add_runner_flags",
    "audit_spec_from_args",
    "bounded_int",
    "defence_params",
    "existing_file",
    "parse_attack",
    "parse_sets",
    "print_out",
    "resolve_device",
    "runner_from_args",
]

#: The detectors `--detector` offers (faces.detect.DETECTORS; kept here so --help stays fast).
DETECTOR_CHOICES = ("hog", "mmod", "auto")

#: Seeds go to torch.Generator.manual_seed and numpy, which take at most 64-bit values.
SEED_MAX = 2**63 - 1
#: --limit and the like: a face count, not a memory size.
COUNT_MAX = 10_000_000


def bounded_int(lo: int, hi: int) -> Any:
    """An argparse type: an integer in [lo, hi], else argparse's own one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range [{lo}, {hi}]")
        return value

    parse.__name__ = "integer"
    return parse


def existing_file(path: str, flag: str) -> str:
    """`path` if it names an existing regular file, else a UsageError saying which flag."""
    import stat
    from pathlib import Path

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError:
        raise UsageError(f"{flag} '{path}': no such file") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{flag} '{path}' is a directory: give an image file")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{flag} '{path}' is not a regular file")
    return path


def resolve_device(name: str | None) -> Any:
    """The torch device for --device (typed DeviceError when absent or unknown)."""
    from facepriv_core import models

    return models.resolve_device(name)


def defence_params(defence: Any, sets: Sequence[str]) -> Any:
    """The defence's Params from --set pairs; errors list the valid parameters and bounds."""
    from facepriv_core.validation import validate

    return validate(defence.Params, parse_sets(sets), f"--set for defence '{defence.name}'")


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


def parse_attack(item: str) -> tuple[str, dict[str, str], str | None]:
    """`NAME` or `NAME:key=value[,key=value]` into (name, params, label).

    The label, which keys the attack's results, is None for a plain name (results stay
    under the name) and the text as given otherwise, so `identity:scenario=naive` and
    `identity:scenario=parrot` can run in one audit."""
    name, colon, rest = item.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"--attack expects NAME or NAME:key=value[,key=value], got {item!r}")
    if not colon:
        return name, {}, None
    pairs = [p for p in rest.split(",") if p.strip()]
    if not pairs:
        raise UsageError(f"--attack {item!r}: give key=value pairs after the colon")
    try:
        params = parse_sets(pairs)
    except UsageError:
        raise UsageError(f"--attack expects NAME:key=value[,key=value], got {item!r}") from None
    label = f"{name}:" + ",".join(f"{k}={v}" for k, v in params.items())
    return name, params, label


def audit_spec_from_args(args: argparse.Namespace) -> Any:
    """An AuditSpec from --spec FILE.yaml, or from the flags (flags given override the file)."""
    from facepriv_core import specfile
    from facepriv_core.audit import AuditSpec
    from facepriv_core.validation import validate

    base: dict[str, Any] = specfile.load(args.spec) if args.spec else {}
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
        "reproducible_key": True if args.reproducible_key else None,
        "detector": args.detector,
        "face_index": args.face_index,
    }
    spec = {**base, **{k: v for k, v in flags.items() if v is not None}}
    if args.set:
        given = spec.get("defence_params") or {}
        if not isinstance(given, dict):
            raise UsageError("defence_params in the spec must be a mapping of name: value")
        spec["defence_params"] = {**given, **parse_sets(args.set)}
    if args.attack:
        spec["attacks"] = []
        for item in args.attack:
            name, inline, label = parse_attack(item)
            spec["attacks"].append({"name": name, "label": label,
                                    "params": {**attack_params.get(name, {}), **inline}})
    if "defence" not in spec:
        raise UsageError("give --defence NAME or a --spec file that names one")
    return validate(AuditSpec, spec, "audit spec")


def add_detector_flags(p: argparse.ArgumentParser, face_index: bool = True,
                       default: str | None = "hog") -> None:
    """--detector hog|mmod|auto (and --face-index N) for every verb that detects faces."""
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default=default,
                   help="face detector for photos: hog (fast, default), mmod (CNN, slower, "
                        "finds harder faces) or auto (hog, then mmod when hog is unsure)")
    if face_index:
        p.add_argument("--face-index", type=bounded_int(0, COUNT_MAX), metavar="N",
                       default=0 if default else None,
                       help="which detected face to use in a photo with several "
                            "(0, the default, is the largest confident face)")


def add_audit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default=None, help="an audit spec in YAML (flags override it)")
    p.add_argument("--defence", default=None, help="registered defence name")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a defence parameter, repeatable")
    p.add_argument("--attack", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="an attack, repeatable; inline params label its results, e.g. "
                        "identity:scenario=parrot")
    p.add_argument("--attack-set", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an attack parameter, repeatable")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", action="append", default=[], help="a photo, repeatable")
    src.add_argument("--dataset", default=None,
                     help="olivetti:PATH, folder:PATH, aligned:PATH, zip:PATH, sfhq:PATH or lfw")
    p.add_argument("--limit", type=bounded_int(1, COUNT_MAX), default=None,
                   help="use at most N faces")
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=None,
                   help="seed of the keyless random draws; the key too with --reproducible-key")
    p.add_argument("--reproducible-key", action="store_true",
                   help="derive keyed defences' client key from --seed: reproducible, NOT "
                        "secret (default: a fresh key from OS entropy every run)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps or auto")
    add_detector_flags(p, default=None)
    p.add_argument("--out", default=None, help="folder for the result JSON and the images of "
                   "the first 64 faces (original, protected, reconstructions)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_runner_flags(p)


def add_runner_flags(p: argparse.ArgumentParser) -> None:
    """--runner local|ray and --ray-address: where the work runs (same numbers either way)."""
    p.add_argument("--runner", choices=("local", "ray"), default="local",
                   help="run in this process (default) or on a Ray cluster: a local one "
                        "unless --ray-address is given (pip install '.[ray]')")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="address of a running Ray cluster (with --runner ray)")
    p.add_argument("--ray-workers", type=bounded_int(1, 4096), default=None, metavar="N",
                   help="Ray workers (default: one per GPU, else per CPU of the cluster)")


def runner_from_args(args: argparse.Namespace) -> Any:
    """The Runner the flags ask for; a missing Ray install is a one-line UsageError."""
    from facepriv_core.runners import get_runner

    if args.runner == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError("--runner ray needs Ray: pip install '.[ray]'")
    elif args.ray_address or args.ray_workers:
        raise UsageError("--ray-address and --ray-workers are for --runner ray")
    return get_runner(args.runner, address=args.ray_address, workers=args.ray_workers)
