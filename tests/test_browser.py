"""End to end in a real browser: Debian's chromium driven by Playwright (marker `browser`).

Starts `streamlit run app/main.py`, uploads a face on the Face page, picks a non-default
defence and parameter on Protect, runs an attack on Attack: the uploaded face and the chosen
defence must still be the ones used, with the verdict shown; after switching defence the
earlier card still shows its own wire. Saves a screenshot of every page to the folder in
FACEPRIV_SCREENSHOTS (default: pytest's temp folder). Navigation uses the sidebar links, as a
person would (a fresh URL is a fresh session).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import free_port, wait_until_serving
from PIL import Image

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FACEPRIV_CHROMIUM", "/usr/bin/chromium")
PAGES = ("Face", "Protect", "Attack", "Compare", "Curves", "Benchmark", "Report")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/_stcore/health", "streamlit",
                           accept=lambda _status, body: body == b"ok")
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
def face_file(tmp_path_factory: pytest.TempPathFactory, sfhq_dir: Path) -> Path:
    """A real-looking face not built into the app: an SFHQ crop, saved as a PNG upload."""
    with open(sfhq_dir / "manifest.csv", newline="") as f:
        first = next(r for r in csv.DictReader(f) if r["age_years"] and
                     20 <= float(r["age_years"]) <= 60)
    path = tmp_path_factory.mktemp("upload") / "visitor.png"
    Image.open(sfhq_dir / first["file"]).convert("RGB").save(path)
    return path


def _go(page, name: str) -> None:
    """Navigate with the sidebar link (client-side: the session and its state stay)."""
    slug = "" if name == "Face" else name.lower()
    page.locator(f"[data-testid=stSidebarNav] a[href$='/{slug}']").first.click()
    page.get_by_role("heading", level=1).filter(has_text=re.compile(name if name != "Face"
                                                                    else "FacePriv")).wait_for()
    page.wait_for_timeout(800)


def _settle(page, timeout: float = 60_000) -> None:
    """Wait until the app is not running a script (the status widget goes away)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden", timeout=timeout)


def _context(page) -> str:
    return page.locator("[data-testid=stMarkdownContainer]").filter(
        has_text="Current face:").first.inner_text()


def _no_tracebacks(page) -> None:
    assert page.locator(".stException, [data-testid=stException]").count() == 0
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "Traceback" not in text and "Error:" not in text.replace("error:", "")


def _select(page, label: str, option: re.Pattern[str], typed: str) -> None:
    """Open a select box, type to filter (long lists are virtualised), pick the option."""
    page.get_by_label(label, exact=True).first.click()
    page.keyboard.type(typed)
    page.get_by_role("option", name=option).first.click()
    _settle(page)


def _launch_identity(page) -> None:
    box = page.get_by_role("checkbox", name=re.compile("Identity matching"))
    if not box.is_checked():
        page.get_by_text("Identity matching and data abuse").first.click()
        _settle(page)
    page.get_by_role("button", name="Launch").click()


def test_upload_protect_attack_keeps_state_with_screenshots(server: str, browser, shots: Path,
                                                           face_file: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1700})
    page.goto(server)
    page.get_by_role("heading", name="FacePriv workbench").wait_for(timeout=120_000)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(face_file))
    page.get_by_text("dlib chip 150x150").wait_for(timeout=120_000)
    _settle(page)
    assert "upload visitor.png" in _context(page)
    _no_tracebacks(page)
    page.screenshot(path=str(shots / "1_face.png"), full_page=True)

    _go(page, "Protect")
    _select(page, "Defence", re.compile(r"^blur:"), "blur")
    kernel = page.get_by_role("slider").first  # blur's first parameter: kernel (9)
    kernel.focus()
    for _ in range(6):
        kernel.press("ArrowRight")
    _settle(page, 120_000)
    page.get_by_text("what the server receives").wait_for(timeout=120_000)
    page.get_by_text("Privacy: does the wire still match this person?").wait_for()
    page.get_by_text("identity cosine (dlib-resnet)").wait_for(timeout=120_000)
    _settle(page, 120_000)
    context = _context(page)
    assert "upload visitor.png" in context and "blur" in context and "kernel=15" in context
    _no_tracebacks(page)
    page.screenshot(path=str(shots / "2_protect.png"), full_page=True)

    _go(page, "Attack")
    context = _context(page)
    assert "upload visitor.png" in context and "kernel=15" in context, context
    _launch_identity(page)
    first = page.get_by_text(re.compile(r"#1 identity on blur: done")).first
    first.wait_for(timeout=240_000)
    _settle(page)
    card_text = page.locator("[data-testid=stMain]").inner_text()
    assert "face: upload visitor.png" in card_text and "kernel=15" in card_text
    assert re.search(r"identity: (LEAKS|HOLDS|INCONCLUSIVE)", card_text)  # the verdict badge

    # switch defence: the earlier card keeps its own wire
    page.get_by_text("Change the defence").click()
    _select(page, "Defence", re.compile(r"^pixelate:"), "pixelate")
    _launch_identity(page)
    page.get_by_text(re.compile(r"#2 identity on pixelate: done")).first.wait_for(
        timeout=240_000)
    _settle(page)
    captions = page.locator("[data-testid=stImageCaption], [data-testid=caption]")
    all_captions = " ".join(captions.all_inner_texts())
    assert "what the server received (blur)" in all_captions
    assert "what the server received (pixelate)" in all_captions
    _no_tracebacks(page)
    page.screenshot(path=str(shots / "3_attack.png"), full_page=True)
    page.get_by_text(re.compile(r"^Run history")).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "3b_attack_history.png"))

    for i, name in enumerate(PAGES[3:], start=4):
        _go(page, name)
        _settle(page)
        assert "upload visitor.png" in _context(page)
        if name == "Compare":  # the defaults: current defence and blur, identity, this face
            page.get_by_role("button", name="Compare", exact=True).click()
            page.get_by_text(re.compile(r"comparison of .*: done")).first.wait_for(
                timeout=240_000)
            _settle(page)
            assert page.locator("[data-testid=stDataFrame]").count() >= 1
        if name == "Report":
            page.get_by_role("button", name="Download HTML").wait_for(timeout=120_000)
            assert "Verdict summary" in page.locator("[data-testid=stMain]").inner_text()
        _no_tracebacks(page)
        page.screenshot(path=str(shots / f"{i}_{name.lower()}.png"), full_page=True)
    assert "#1 identity on blur" in page.locator("[data-testid=stMain]").inner_text()
    assert (shots / "2_protect.png").stat().st_size > 10_000
