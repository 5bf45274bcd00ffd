"""The workbench keeps its state across pages and binds results to what they attacked:
session store, run history, verdict badges, comparisons, the report's summary (AppTest)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _upload_face(at: AppTest, image: np.ndarray, name: str = "me.png") -> None:
    at.radio(key="face_source").set_value("Upload").run()
    at.file_uploader[0].set_value((name, _png(image), "image/png")).run()
    assert not at.exception, at.exception


def _context(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Current face:**"))


def _wait(at: AppTest, done, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if done():
            return
        time.sleep(0.5)
    pytest.fail("timed out waiting for the app")


def _cards(at: AppTest) -> list[str]:
    """Run headers, once each (the comparison view repeats the ones it shows)."""
    return list(dict.fromkeys(m.value for m in at.markdown if m.value.startswith("**#")))


def _launch_identity(at: AppTest) -> None:
    """The identity attack with the authorised recogniser only (fast on one face)."""
    at.checkbox(key="attack.identity").check().run()
    at.checkbox(key="attack_params.identity.other_recognisers").uncheck().run()
    next(b for b in at.button if b.label == "Launch").click().run()


def _all_done(at: AppTest) -> bool:
    cards = _cards(at)
    return bool(cards) and all("done" in c or "failed" in c for c in cards)


@pytest.fixture()
def app() -> AppTest:
    return AppTest.from_file(MAIN, default_timeout=300).run()


def test_face_page_says_what_to_do(app: AppTest) -> None:
    text = " ".join(m.value for m in app.markdown)
    assert "audits" in text and "What to do next" in text
    assert app.get("page_link"), "the Face page links to the next step"


def test_face_defence_and_params_survive_page_changes(app: AppTest, sfhq_dir: Path,
                                                     sfhq_rows: list[dict[str, str]]) -> None:
    face = np.asarray(Image.open(sfhq_dir / sfhq_rows[0]["file"]).convert("RGB"))
    _upload_face(app, face, "person.png")
    assert "upload person.png" in _context(app)
    app.switch_page("../pages/protect.py").run()
    app.selectbox(key="defence_name").set_value("blur").run()
    app.slider(key="params.blur.sigma").set_value(3.0).run()
    assert not app.exception, app.exception
    for page in ("attack", "curves", "report", "face"):
        app.switch_page(f"../pages/{page}.py").run()
        assert not app.exception, (page, app.exception)
        context = _context(app)
        assert "upload person.png" in context and "`blur`" in context and "sigma=3.0" in context
    app.switch_page("../pages/protect.py").run()
    assert app.selectbox(key="defence_name").value == "blur"
    assert app.slider(key="params.blur.sigma").value == 3.0


def test_history_keeps_each_run_bound_to_its_wire_and_compares(app: AppTest) -> None:
    app.switch_page("../pages/attack.py").run()
    _launch_identity(app)  # against the default pixelate
    _wait(app, lambda: _all_done(app))
    app.selectbox(key="defence_name").set_value("noise").run()
    _launch_identity(app)
    _wait(app, lambda: len(_cards(app)) == 2 and _all_done(app))
    assert not app.exception and not app.error, (app.exception, app.error)
    cards = " ".join(_cards(app))
    assert "**#2 identity on noise**" in cards and "**#1 identity on pixelate**" in cards
    captions = [img.proto.imgs[0].caption for img in app.get("image")]
    # the earlier card still shows what *it* sent, after the defence changed
    assert "what the server received (pixelate)" in captions
    assert "what the server received (noise)" in captions
    details = [c.value for c in app.caption if c.value.startswith("face:")]
    assert any("defence `pixelate`" in d and "image 3x150x150" in d for d in details)
    # side by side: both runs, picked by title
    assert app.selectbox(key="compare_run_a").value == "#1 identity on pixelate"
    assert app.selectbox(key="compare_run_b").value == "#2 identity on noise"


def test_attack_card_shows_the_engine_verdict(app: AppTest) -> None:
    app.switch_page("../pages/attack.py").run()
    _launch_identity(app)
    _wait(app, lambda: _all_done(app))
    verdict = app.session_state["_runs"][0].output.verdict
    assert verdict is not None and verdict.leaks  # pixelate block 8 still matches the face
    badges = [m.value for m in app.markdown if "-badge[" in m.value]
    assert any("identity: LEAKS" in b and ":red-badge[" in b for b in badges), badges
    shown = " ".join(m.value for m in app.markdown)
    assert verdict.reason in shown  # the engine's sentence, not one the UI made up
    rules = [c.value for c in app.caption if c.value.startswith("Rule:")]
    assert rules and verdict.metric in rules[0] and "more leakage" in rules[0]


def _compare(app: AppTest, attack_names: list[str]) -> None:
    app.switch_page("../pages/compare.py").run()
    app.multiselect(key="compare_defences").set_value(["none", "pixelate"]).run()
    app.multiselect(key="compare_attacks").set_value(attack_names).run()
    next(b for b in app.button if b.label == "Compare").click().run()
    _wait(app, lambda: any("done" in m.value for m in app.markdown if m.value.startswith("**#")))
    assert not app.exception and not app.error, (app.exception, app.error)
    table = app.dataframe[0].value
    assert list(table["defence"]) == ["none", "pixelate"]
    assert float(table["utility_cosine"][0]) == pytest.approx(1.0, abs=1e-3)
    assert float(table["utility_cosine"][1]) < 0.999
    captions = [img.proto.imgs[0].caption for img in app.get("image")]
    assert sum("what the server received" in c for c in captions) == 2


def test_compare_page_table_and_gallery(app: AppTest) -> None:
    _compare(app, [])


@pytest.mark.slow
def test_compare_page_with_every_recogniser(app: AppTest) -> None:
    _compare(app, ["identity"])
    table = app.dataframe[0].value
    assert float(table["identity.match_rate"][0]) == 1.0  # no defence: the person matches


def test_report_has_front_matter_summary_and_no_faces_by_default(app: AppTest) -> None:
    app.switch_page("../pages/attack.py").run()
    _launch_identity(app)
    _wait(app, lambda: _all_done(app))
    app.switch_page("../pages/protect.py").run()
    next(b for b in app.button if b.label.startswith("Keep this protection")).click().run()
    app.switch_page("../pages/report.py").run()
    assert not app.exception, app.exception
    app.text_input(key="report_title").set_value("Pixelation review").run()
    app.text_input(key="report_author").set_value("A. Auditor").run()
    app.text_area(key="report_notes").set_value("block 8 on one face").run()
    listed = " ".join(m.value for m in app.markdown)
    assert "#1 identity on pixelate" in listed and "protect with pixelate" in listed
    assert "Verdict summary" in [s.value for s in app.subheader]
    summary = app.table[0].value
    attack_run = app.session_state["_runs"][0]
    assert attack_run.output.verdict.reason in list(summary["reason"])
    assert summary["verdict"].iloc[0] in ("leaks", "inconclusive", "no leak")
    assert app.checkbox(key="report_faces").value is False
    html = _html(app)
    assert len(app.get("download_button")) == 2
    assert "Pixelation review" in html and "A. Auditor" in html and "block 8 on one face" in html
    assert "<img src='data:image" not in html  # no face pixels unless asked
    app.checkbox(key="report_faces").check().run()
    assert any("pictures of the faces" in w.value for w in app.warning)
    assert "<img src='data:image" in _html(app)


def _html(at: AppTest) -> str:
    """The HTML the Report page offers, built from this session's runs and fields."""
    from app.report_sections import build_report

    return build_report(at.session_state["_runs"], at.text_input(key="report_title").value,
                        at.text_input(key="report_author").value,
                        at.text_area(key="report_notes").value,
                        at.checkbox(key="report_faces").value)[1]
