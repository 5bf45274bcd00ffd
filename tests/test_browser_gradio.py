"""The Gradio front end in a real browser (marker `browser`): upload a face, protect it with a
non-default parameter, launch an attack, see the result; no request leaves loopback.

Screenshots go to the folder in FACEPRIV_SCREENSHOTS (default: pytest's temp folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import free_port, wait_until_serving
from PIL import Image

pytestmark = pytest.mark.browser
pytest.importorskip("gradio", reason="the gradio extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FACEPRIV_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def gradio_server() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "app.gradio_app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, "the Gradio app", tries=240)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_upload_protect_attack_in_chromium(gradio_server: str, sfhq_dir: Path,
                                           tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("FACEPRIV_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    crop = next(p for p in sorted(sfhq_dir.glob("*.jpg")) if "sample_1x2" in p.name)
    upload = tmp_path / "face.png"
    Image.open(crop).convert("RGB").save(upload)

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("request", lambda r: None if r.url.startswith(
            ("http://127.0.0.1", "data:", "blob:")) else outside.append(r.url))
        page.goto(gradio_server, wait_until="load")
        page.get_by_role("button", name="Protect").wait_for(timeout=120_000)
        page.locator("input[type=file]").first.set_input_files(str(upload))
        page.wait_for_timeout(1500)
        number = page.get_by_label("number input for block")
        number.fill("16")
        number.press("Enter")
        page.get_by_role("button", name="Protect").click()
        page.get_by_text("uploaded face (kept in memory only)").wait_for(timeout=180_000)
        page.get_by_role("button", name="Launch attack").click()
        page.get_by_text("done in").wait_for(timeout=400_000)
        page.screenshot(path=str(shots / "gradio_after_attack.png"), full_page=True)
        body = page.inner_text("body")
        browser.close()
    assert "pixelate" in body and "uploaded face" in body
    assert "Traceback" not in body and "Error" not in body.split("Use via API")[0]
    assert not outside, f"requests left this machine: {outside[:5]}"
