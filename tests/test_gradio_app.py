"""The Gradio front end: its API answers with the engine's JSON (the CLI's), errors in words,
and the ZeroGPU decorator applies only on a ZeroGPU runtime."""

from __future__ import annotations

import base64
import io
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

gradio = pytest.importorskip("gradio", reason="the gradio extra is not installed")
gradio_client = pytest.importorskip("gradio_client")

from _loopback import free_port  # noqa: E402

from app import gpu, gradio_api  # noqa: E402

FAST_IDENTITY = json.dumps({"identity": {"other_recognisers": False}})


@pytest.fixture(scope="module")
def client() -> Iterator[gradio_client.Client]:
    from app import gradio_app

    demo = gradio_app.build()
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                        quiet=True, ssr_mode=False, theme=gradio_app.THEME)
    try:
        yield gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_api_lists_the_named_endpoints(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/protect", "/attack", "/audit", "/verify"} <= set(endpoints)


def test_audit_endpoint_returns_what_the_cli_prints(client, tmp_path: Path, capsys) -> None:
    """Same face (the built-in sample), defence and attack: the same verdicts and numbers as
    `facepriv audit --json`."""
    from PIL import Image

    from facepriv_core.cli import main

    remote = client.predict(defence="pixelate", params='{"block": 16}', attacks="identity",
                            attack_params=FAST_IDENTITY, api_name="/audit")
    sample = tmp_path / "sample.png"
    Image.fromarray(gradio_api.sample_image()).save(sample)
    capsys.readouterr()
    assert main(["audit", "--image", str(sample), "--defence", "pixelate", "--set", "block=16",
                 "--attack", "identity", "--attack-set", "identity.other_recognisers=false",
                 "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert remote["defence"] == local["defence"] == "pixelate"
    assert remote["attacks"] == local["attacks"]
    assert remote["utility"] == local["utility"]
    if "verdicts" in local:  # the engine's verdicts, identical whichever front end asks
        assert remote["verdicts"] == local["verdicts"]
        assert remote["overall_verdict"] == local["overall_verdict"]
        assert set(remote["verdicts"]["identity"]) >= {"leaks", "metric", "value", "threshold",
                                                        "ci", "reason"}


def test_protect_endpoint_takes_an_image_in_memory(client) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(gradio_api.sample_image()).save(buf, format="JPEG")
    out = client.predict(defence="blur", params='{"kernel": 21}',
                         image_b64=base64.b64encode(buf.getvalue()).decode(),
                         api_name="/protect")
    assert out["wire_kind"] == "image" and out["utility"]["utility_cosine"] < 0.999
    preview = Image.open(io.BytesIO(base64.b64decode(out["preview_png_b64"])))
    assert preview.size == (150, 150)


def test_bad_input_comes_back_as_words(client) -> None:
    with pytest.raises(Exception) as exc:
        client.predict(image_b64="not base64!!", api_name="/protect")
    text = str(exc.value)
    assert "base64" in text and "Traceback" not in text and "binascii" not in text
    with pytest.raises(Exception) as exc:
        client.predict(params="[1, 2]", api_name="/protect")
    assert "JSON object" in str(exc.value)


def test_spaces_gpu_applies_only_on_zero_gpu(monkeypatch) -> None:
    calls: list[int] = []

    def fake_gpu(duration: int = 60):  # the shape of spaces.GPU(duration=...)
        def deco(fn):
            def wrapped(*a, **k):
                calls.append(duration)
                return fn(*a, **k)
            return wrapped
        return deco

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))

    def work(x: int) -> int:
        return x + 1

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu.gpu(duration=30)(work) is work
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert gpu.gpu(duration=30)(work)(1) == 2 and calls == [30]
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: plain function
    assert gpu.gpu(duration=30)(work) is work


def test_uploads_go_to_a_private_ram_folder() -> None:
    import os

    from app import gradio_app  # noqa: F401  (sets GRADIO_TEMP_DIR on import)

    folder = Path(os.environ["GRADIO_TEMP_DIR"])
    assert folder.is_dir() and (folder.stat().st_mode & 0o077) == 0
    if Path("/dev/shm").is_dir():
        assert str(folder).startswith("/dev/shm")
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_widgets_follow_the_params_schema() -> None:
    from app import gradio_app
    from facepriv_core import defences
    from facepriv_core.plugin_catalog import describe_params

    specs = {s["name"]: s for s in describe_params(defences.classes()["pixelate"].Params)}
    slider = gradio_app.widget_for(specs["block"])
    assert isinstance(slider, gradio.Slider) and slider.minimum >= 1
    assert gradio_app.params_from_widgets("pixelate", [16]) == {"block": 16}
    with pytest.raises(ValueError):
        gradio_app.params_from_widgets("pixelate", [0])
    np.testing.assert_array_equal(gradio_api.face_from(None)[0].chip150.shape, (150, 150, 3))
