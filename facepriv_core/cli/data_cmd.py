"""`facepriv data list|fetch`: the face datasets this machine has, and the public ones."""

from __future__ import annotations

import argparse
import sys

from facepriv_core.cli._common import print_out


def cmd_data_list(args: argparse.Namespace) -> int:
    from facepriv_core import data_sources

    found = data_sources.available_datasets()
    if args.json:
        print_out([d.as_dict() for d in found], True)
        return 0
    if not found:
        print("no face datasets found. Run `facepriv data fetch olivetti`, or set "
              f"${data_sources.ENV_DATA} to a folder holding olivetti/ or sfhq/; any folder "
              "with one sub-folder per person works as folder:PATH.")
        return 0
    width = max(len(d.name) for d in found)
    for d in found:
        print(f"{d.name:<{width}}  --dataset {d.spec}")
        print(f"{'':<{width}}  {d.description} (found in {d.origin})")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from facepriv_core import data_sources

    source = data_sources.fetch(
        args.name, progress=lambda msg: print(f"facepriv: {msg}", file=sys.stderr))
    if args.json:
        print_out(source.as_dict(), True)
    else:
        print(f"{source.name}: ready; use --dataset {source.spec}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from facepriv_core.data_sources import FETCHABLE

    d = sub.add_parser("data", help="face datasets: what this machine has, fetch public ones")
    dsub = d.add_subparsers(dest="data_command", required=True)
    ls = dsub.add_parser("list", help="datasets found ($FACEPRIV_DATA, the cache, ../shared/data)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_data_list)
    f = dsub.add_parser("fetch", help="download a public dataset with scikit-learn (network)")
    f.add_argument("name", choices=FETCHABLE, help="the dataset")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=cmd_data_fetch)
