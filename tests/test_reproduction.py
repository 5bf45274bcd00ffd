"""Reproduction check: the seed papers' qualitative findings hold on Olivetti and SFHQ.

The numbers behind docs/reproduction.md come from bench/reproduction_table.py; this test runs
the same functions (fewer SFHQ faces and steps) and asserts the directions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(_BENCH))  # the script imports bench_data, as it does when run
_SPEC = importlib.util.spec_from_file_location("reproduction_table",
                                               _BENCH / "reproduction_table.py")
assert _SPEC is not None and _SPEC.loader is not None
rt = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rt)


@pytest.mark.slow
def test_facemix_ranking_on_olivetti(olivetti_path: Path) -> None:
    rows = rt.ranking(olivetti_path, limit=80)
    checks = {rate: rt.ranking_checks(rows, rate) for rate in rt.RATES}
    print(rt.ranking_markdown(rows))
    for rate in rt.RATES:
        assert checks[rate]["noise leaks most"] == "yes"
        assert checks[rate]["weaker pixelation leaks more (block 8 vs 16)"] != "NO"
        assert checks[rate]["weaker blur leaks more (kernel 9 vs 21)"] != "NO"


@pytest.mark.slow
def test_split_features_are_invertible(sfhq_dir: Path) -> None:
    inversion = rt.split_inversion(sfhq_dir, limit=6, steps=200)
    print(rt.inversion_markdown(inversion))
    assert inversion["srra"] >= 0.5 and inversion["cosine"] > 0.9
