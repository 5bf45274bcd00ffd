"""Measure the zoo gate for every model that can load here; `--write` records the figures.

    python bench/zoo_gate.py                 # measure and print, change nothing
    python bench/zoo_gate.py --write         # also write facepriv_core/model_cards/zoo_gate.json
                                             # and the "Zoo gate" section of every card
    python bench/zoo_gate.py --models mobilefacenet,oarriaga-gender
    python bench/zoo_gate.py --cards-only    # re-render the cards' sections from the JSON

Models that cannot load here (deepface without its weights, npm models not fetched) are
skipped and keep their previous record. The bounds are in facepriv_core/models/gate.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facepriv_core.models import gate, gate_measure, zoo  # noqa: E402

BEGIN, END = "<!-- zoo-gate:begin -->", "<!-- zoo-gate:end -->"


def card_section(names: list[str], records: dict[str, dict[str, Any]]) -> str:
    """The generated "Zoo gate" section of one card (every model sharing it)."""
    lines = [BEGIN, "## Zoo gate", "",
             "Measured by `python bench/zoo_gate.py --write` (figures in",
             "`facepriv_core/model_cards/zoo_gate.json`, bounds in",
             "`facepriv_core/models/gate.py`). A model that fails is not offered.",
             ""]
    for name in names:
        record = records.get(name)
        if record is None:
            lines.append(f"- `{name}`: not measured here (cannot load on the gate machine).")
            continue
        why = gate.judge(record)
        verdict = "passes" if why is None else f"**fails, not offered**: {why}"
        lines.append(f"- `{name}` {verdict}. {gate.summary_line(record)}.")
    lines.append(END)
    return "\n".join(lines)


def update_cards(records: dict[str, dict[str, Any]]) -> list[Path]:
    by_card: dict[Path, list[str]] = {}
    for st in zoo.list_models():
        by_card.setdefault(zoo.entry(st.name).card, []).append(st.name)
    changed = []
    for card, names in sorted(by_card.items()):
        if not card.is_file() or not any(n in records for n in names):
            continue
        text = card.read_text()
        section = card_section(sorted(names), records)
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            new = head + section + tail
        else:
            new = text.rstrip("\n") + "\n\n" + section + "\n"
        if new != text:
            card.write_text(new)
            changed.append(card)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding olivetti/ and sfhq/ (default ../shared/data)")
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--write", action="store_true", help="record the figures")
    parser.add_argument("--cards-only", action="store_true",
                        help="measure nothing: rewrite the cards' sections from the JSON")
    args = parser.parse_args(argv)
    if args.cards_only:
        for card in update_cards(zoo.gate_records()):
            print(f"updated {card.relative_to(ROOT)}")
        return 0

    wanted = [m for m in args.models.split(",") if m] or [s.name for s in zoo.list_models()]
    loadable = []
    for name in wanted:
        st = zoo.status(name, gated=False)
        if st.task == "detection":
            continue
        if st.available:
            loadable.append(name)
        else:
            print(f"skip {name}: {st.reason}")
    t0 = time.perf_counter()
    data = gate_measure.load_data(args.data)
    print(f"data: {len(data.olivetti_chips)} Olivetti, {len(data.sfhq_chips)} SFHQ chips "
          f"({time.perf_counter() - t0:.0f} s)")
    records = zoo.gate_records() if args.write else {}
    records = dict(records)
    print(f"{'model':18s} {'task':12s} {'gate':5s} figures")
    for name in loadable:
        t = time.perf_counter()
        record = gate_measure.measure(name, data)
        records[name] = record
        why = gate.judge(record)
        print(f"{name:18s} {record['task']:12s} {'pass' if why is None else 'FAIL':5s} "
              f"{gate.summary_line(record)} ({time.perf_counter() - t:.0f} s)"
              + ("" if why is None else f"\n{'':37s}{why}"), flush=True)
    if args.write:
        meta = {"data": "Olivetti (AT&T) 400 faces; SFHQ sample crops, ../shared/data",
                "command": "python bench/zoo_gate.py --write"}
        gate.write_records(gate.gate_file(zoo.CARDS_DIR), records, meta)
        for card in update_cards(records):
            print(f"updated {card.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
