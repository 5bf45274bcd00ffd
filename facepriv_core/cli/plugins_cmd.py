"""`facepriv defences` and `facepriv attacks`: every plugin with its parameters."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from facepriv_core.cli._common import print_out


def _bounds(p: dict[str, Any]) -> str:
    if p["choices"]:
        return "one of " + ", ".join(str(c) for c in p["choices"])
    return ", ".join(f"{op} {v}" for op, v in p["bounds"].items())


def _print_plugin(row: dict[str, Any], headline: list[tuple[str, str]]) -> None:
    print(f"{row['name']}: {row['title']}")
    for label, value in headline:
        if value:
            print(textwrap.fill(value, width=100, initial_indent=f"  {label:<11} ",
                                subsequent_indent=" " * 14))
    if not row["params"]:
        print("  parameters  none")
    for i, p in enumerate(row["params"]):
        label = "parameters" if i == 0 else ""
        default = "" if p["default"] is None else f" = {p['default']!r}"
        bounds = _bounds(p)
        print(f"  {label:<11} {p['name']} ({p['type']}{default}{'; ' + bounds if bounds else ''})")
        if p["description"]:
            print(textwrap.fill(p["description"], width=100, initial_indent=" " * 16,
                                subsequent_indent=" " * 16))
    print()


def cmd_defences(args: argparse.Namespace) -> int:
    from facepriv_core.plugin_catalog import describe_defences

    rows = sorted(describe_defences(), key=lambda r: r["name"])
    if args.json:
        print_out(rows, True)
        return 0
    for row in rows:
        kind = row["wire_kind"] + (", optimising (runs as a job)" if row["optimising"] else "")
        _print_plugin(row, [("paper", row["paper"] or ""), ("wire", kind)])
    print("Set parameters with --set NAME=VALUE (protect, audit, sweep, verify --defence).")
    return 0


def cmd_attacks(args: argparse.Namespace) -> int:
    from facepriv_core.plugin_catalog import describe_attacks

    rows = sorted(describe_attacks(), key=lambda r: r["name"])
    if args.json:
        print_out(rows, True)
        return 0
    for row in rows:
        _print_plugin(row, [("threat", row["threat_model"]),
                            ("applies to", ", ".join(row["applies_to"]) + " wires")])
    print("Set parameters with --attack-set NAME.KEY=VALUE (audit, sweep).")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("defences", help="list every defence with its paper, wire and parameters")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_defences)
    a = sub.add_parser("attacks", help="list every attack with its threat model and parameters")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_attacks)
