"""End to end in a real browser: Debian's chromium driven by Playwright (marker `browser`).

Starts `streamlit run app/main.py`, uploads a face through the file input, sees it pixelated,
launches an attack and saves screenshots of the Protect and Attack pages to the folder in
FACEPRIV_SCREENSHOTS (default: pytest's temp folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FACEPRIV_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health") as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).is_file() and not shutil.which(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("FACEPRIV_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def face_file(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("upload") / "face.png"
    Image.fromarray(astronaut).save(path)
    return path


def _upload(page, face_file: Path) -> None:
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(face_file))


def test_upload_protect_attack_with_screenshots(server: str, browser, shots: Path,
                                                face_file: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{server}/protect")
    _upload(page, face_file)
    page.get_by_text("what the server receives").wait_for(timeout=120_000)
    page.get_by_text("Pixelation", exact=True).wait_for()
    page.get_by_text("utility cosine").wait_for()
    assert page.locator(".stException").count() == 0
    page.screenshot(path=str(shots / "protect.png"), full_page=True)

    page.goto(f"{server}/attack")
    _upload(page, face_file)
    page.get_by_text("Identity matching and data abuse").click()
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("identity: done", exact=False).wait_for(timeout=180_000)
    page.locator("[data-testid=stDataFrame]").first.wait_for()
    assert page.locator(".stException").count() == 0
    page.screenshot(path=str(shots / "attack.png"), full_page=True)
    assert (shots / "protect.png").stat().st_size > 10_000
