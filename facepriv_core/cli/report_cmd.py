"""`facepriv report`: the review-board report from saved audit results.

`--from` takes the result.json an audit writes (`facepriv audit --out DIR`), a sweep.json,
or a JSON list of such results; repeat it to combine files. The HTML is the same one the
app's Report page downloads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from facepriv_core.errors import UsageError


def load_runs(paths: list[str]) -> list[Any]:
    """Every run in the given files (a result, or a list of results), as dicts."""
    runs: list[Any] = []
    for name in paths:
        path = Path(name)
        if path.is_dir() and (path / "result.json").is_file():
            path = path / "result.json"
        if not path.is_file():
            raise UsageError(f"--from {name}: no such file (give the result.json that "
                             "`facepriv audit --out DIR` writes, or a JSON list of them)")
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--from {name}: not a JSON file ({exc})") from None
        items = doc if isinstance(doc, list) else [doc]
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not ({"spec", "attacks"} <= item.keys()
                                                  or {"points", "param"} <= item.keys()):
                where = f"item {i} of " if isinstance(doc, list) else ""
                raise UsageError(f"--from {name}: {where}this is not a saved audit or sweep "
                                 "result (expected the result.json of `facepriv audit --out`)")
            runs.append(item)
    return runs


def cmd_report(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from facepriv_core import report

    runs = load_runs(args.from_)
    try:
        records = [report.as_run(r) for r in runs]
    except ValidationError as exc:
        raise UsageError(f"--from: a result does not match this facepriv version's format "
                         f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
                         ) from None
    env = next((r.get("environment") for r in runs if isinstance(r.get("environment"), dict)),
               None)
    meta = {"title": args.title, "author": args.author, "notes": args.notes}
    if not args.html and not args.json_out:
        raise UsageError("give --html OUT.html and/or --json-out OUT.json")
    if args.html:
        Path(args.html).write_text(report.to_html(records, env, include_faces=False, **meta),
                                   encoding="utf-8")
        print(f"wrote {args.html} ({len(records)} run{'s' if len(records) != 1 else ''}, "
              "no face images)")
    if args.json_out:
        Path(args.json_out).write_text(report.to_json(records, env, **meta), encoding="utf-8")
        print(f"wrote {args.json_out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="a review-board report (HTML/JSON) from saved audits")
    p.add_argument("--from", dest="from_", action="append", required=True, metavar="FILE",
                   help="an audit's result.json (or its --out folder, or a JSON list of "
                        "results); repeatable")
    p.add_argument("--html", default=None, metavar="OUT", help="write the HTML report here")
    p.add_argument("--json-out", default=None, metavar="OUT", help="write the report's JSON")
    p.add_argument("--title", default="FacePriv privacy audit")
    p.add_argument("--author", default="")
    p.add_argument("--notes", default="", help="free text shown under the title")
    p.set_defaults(func=cmd_report)
