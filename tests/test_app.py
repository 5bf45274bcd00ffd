"""The Streamlit app renders headless (AppTest) and serves over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _loopback import free_port
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")


def image_captions(app: AppTest) -> list[str]:
    return [img.proto.imgs[0].caption for img in app.get("image")]


@pytest.fixture()
def app() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    return at.run()


def test_sample_face_detected_and_aligned(app: AppTest) -> None:
    assert not app.exception, app.exception
    captions = image_captions(app)
    assert any("dlib chip" in c for c in captions)
    assert any("112x112" in c for c in captions)
    assert any("Device" in m.value for m in app.sidebar.markdown)


def _png(arr) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_of_a_face_is_aligned(app: AppTest, astronaut) -> None:
    app.radio[0].set_value("Upload").run()
    app.file_uploader[0].set_value(("me.png", _png(astronaut), "image/png")).run()
    assert not app.exception, app.exception
    assert not app.error
    captions = image_captions(app)
    assert any("dlib chip" in c for c in captions)


def test_corrupt_upload_shows_message_not_traceback(app: AppTest) -> None:
    app.radio[0].set_value("Upload").run()
    app.file_uploader[0].set_value(("face.png", b"this is not an image", "image/png")).run()
    assert not app.exception, app.exception
    assert app.error and "not an image" in app.error[0].value.lower()


def test_upload_without_a_face_says_so(app: AppTest) -> None:
    import numpy as np

    flat = np.full((200, 200, 3), 128, np.uint8)
    app.radio[0].set_value("Upload").run()
    app.file_uploader[0].set_value(("wall.png", _png(flat), "image/png")).run()
    assert not app.exception, app.exception
    assert app.error and "face" in app.error[0].value.lower()


def test_streamlit_serves_headless() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", MAIN, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not answer its health check within 60 s")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert b"<title>" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_protect_page_renders_every_defence() -> None:
    from facepriv_core import defences

    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/protect.py").run()
    assert not at.exception, at.exception
    closed_form = [n for n in defences.names() if not defences.get(n).optimising]
    assert set(closed_form) <= {o.split(":")[0] for o in at.selectbox[0].options}
    for name in closed_form:
        at.selectbox[0].set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, at.error[0].value)
        captions = image_captions(at)
        assert any("what the server receives" in c for c in captions), name
        assert at.metric[0].label == "utility cosine"


def test_app_imports_work_outside_the_repo_root(tmp_path: Path) -> None:
    """`streamlit run app/main.py` puts only app/ on sys.path; the entry must cope."""
    script = tmp_path / "run_app.py"
    script.write_text(
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=120).run()\n"
        "assert not at.exception, at.exception\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def _attack_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/attack.py").run()
    at.selectbox(key="defence_name").set_value("split").run()
    return at


def _job_line(at: AppTest, name: str) -> str:
    """The status line of the newest run card of attack `name` ("**#2 identity on split**: ...")."""
    return next((m.value for m in at.markdown if m.value.startswith("**#")
                 and f" {name} on " in m.value.split("**")[1]), "")


def test_attack_page_runs_a_whitebox_job_live() -> None:
    at = _attack_page()
    assert not at.exception, at.exception
    attribute = at.checkbox(key="attack.attribute")
    assert attribute.disabled and "features" in attribute.help  # greyed, with the reason
    at.checkbox(key="attack.whitebox_inversion").check().run()
    # enough steps (~5-10 s on 2 cores) that the page is seen while the job runs
    at.number_input(key="attack_params.whitebox_inversion.steps").set_value(1500).run()
    at.button[0].click().run()
    first = _job_line(at, "whitebox_inversion")
    states = {first.split(":")[1].split(",")[0].strip() if ":" in first else ""}
    for _ in range(240):
        time.sleep(0.5)
        at.run()
        line = _job_line(at, "whitebox_inversion")
        states.add(line.split(":")[1].split(",")[0].strip() if ":" in line else "")
        if "done" in line or "failed" in line:
            break
    assert not at.exception and not at.error, (at.exception, at.error)
    assert "done" in _job_line(at, "whitebox_inversion"), states
    assert "running" in states or "queued" in states
    assert "whitebox_inversion reconstruction" in image_captions(at)
    # The session's report lists the attack and offers JSON and HTML.
    at.switch_page("../pages/report.py").run()
    assert not at.exception, at.exception
    assert any("whitebox_inversion on split" in m.value for m in at.markdown)
    assert len(at.get("download_button")) == 2


def test_report_page_without_results_says_so() -> None:
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("../pages/report.py").run()
    assert not at.exception and "Nothing to report yet" in at.info[0].value


def test_two_sessions_do_not_see_each_others_jobs() -> None:
    first, second = _attack_page(), _attack_page()
    first.checkbox(key="attack.identity").check().run()
    first.button[0].click().run()
    second.run()
    assert _job_line(first, "identity") and not _job_line(second, "identity")


def _files_holding(marker: bytes, since: float) -> list[str]:
    import tempfile

    found = []
    for root in (ROOT, Path(tempfile.gettempdir())):
        for path in root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime >= since and \
                        marker in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_no_uploaded_face_is_written_to_disk(astronaut, tmp_path: Path) -> None:
    """After an upload session, no new file under the repo or the temp dir holds its bytes."""
    upload = _png(astronaut)
    marker = upload[len(upload) // 2: len(upload) // 2 + 64]  # compressed pixel data
    start = time.time()
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.radio[0].set_value("Upload").run()
    at.file_uploader[0].set_value(("me.png", upload, "image/png")).run()
    assert not at.exception and "dlib chip 150x150 (recogniser input)" in image_captions(at)
    at.switch_page("../pages/protect.py").run()
    assert not at.exception
    assert _files_holding(marker, start) == []
    control = tmp_path / "control.png"  # the scan must see a file that does hold the face
    control.write_bytes(upload)
    assert _files_holding(marker, start) == [str(control)]


def test_curves_page_sweeps_and_draws() -> None:
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/curves.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sweep_param.pixelate").value == "block"
    assert at.radio(key="sweep_source").value.startswith("Dataset")  # the default source
    at.radio(key="sweep_source").set_value("Current face only").run()
    assert any("one face" in w.value.lower() for w in at.main.warning)
    at.text_input(key="sweep_values.pixelate.block").set_value("1,8,32").run()
    at.button[0].click().run()
    for _ in range(240):
        if at.get("plotly_chart"):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    trace = figure["data"][0]
    assert trace["text"] == ["block=1", "block=8", "block=32"]
    assert trace["x"][0] == pytest.approx(1.0, abs=1e-6) and trace["x"][2] < trace["x"][0]


def test_benchmark_page_builds_the_table(olivetti_path: Path) -> None:
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/benchmark.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="bench_defences").set_value(["none", "pixelate"]).run()
    at.multiselect(key="bench_attacks").set_value(["identity"]).run()
    # this machine's Olivetti is the default dataset
    assert at.selectbox(key="bench_dataset").value.startswith("olivetti:")
    assert Path(at.selectbox(key="bench_dataset").value.partition(":")[2]).samefile(
        olivetti_path)
    at.slider(key="bench_limit").set_value(8).run()
    at.button[0].click().run()
    for _ in range(240):
        if any("done" in m.value for m in at.markdown):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    table = at.dataframe[0].value
    assert list(table["defence"]) == ["none", "pixelate"]
    assert list(table["params"]) == ["defaults", "block=8"]
    assert float(table["utility_cosine"][0]) == pytest.approx(1.0, abs=1e-3)
    assert float(table["identity.match_rate"][0]) == 1.0
    assert not any(v in (None, "None", "") for col in table.columns if col != "error"
                   for v in table[col])  # every cell says something
    assert at.get("download_button")
    assert at.get("plotly_chart")  # the chart of the table


def test_sidebar_shows_model_cards(app: AppTest) -> None:
    labels = [p.proto.popover.label for p in app.sidebar.get("popover")]
    assert any("dlib-resnet (recognition)" in label for label in labels)
    text = " ".join(m.value for m in app.sidebar.markdown)
    assert "Licence" in text or "licence" in text
