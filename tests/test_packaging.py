"""The package as a wheel: model cards and type marker inside, and it runs outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_model_cards_and_runs_away_from_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(wheels)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("facepriv-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    cards = [n for n in names if n.startswith("facepriv_core/model_cards/") and n.endswith(".md")]
    assert "facepriv_core/py.typed" in names
    assert "facepriv_core/model_cards/dlib-resnet.md" in cards and len(cards) >= 10

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = ("import facepriv_core, facepriv_core.models as m; "
             "print(facepriv_core.__file__); print(m.entry('dlib-resnet').card.is_file())")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    where, card_found = run.stdout.split()
    assert where.startswith(str(site)) and card_found == "True"
    for verb in (["models", "list"], ["defences"]):
        out = subprocess.run([sys.executable, "-m", "facepriv_core", *verb], capture_output=True,
                             text=True, timeout=300, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "dlib-resnet" in out.stdout or "pixelate:" in out.stdout
