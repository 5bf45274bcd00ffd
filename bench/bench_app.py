"""App latency on the device present, through Streamlit's AppTest (the real page scripts).

Rows: seconds from an upload to the protected preview on the Protect page, for each
closed-form defence (target < 1 s on CPU), and seconds from launching a white-box inversion to
its first live reconstruction frame (target < 3 s on CPU). Reference in the same run: the
engine alone (decode + detect + align + protect) for the same upload, so the table shows what
the page adds.

    python bench/bench_app.py
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data
from streamlit.testing.v1 import AppTest

from facepriv_core import attacks, defences, faces
from facepriv_core.attacks.base import AttackCase
from facepriv_core.jobs import LocalRunner

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def upload_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def engine_seconds(png: bytes, name: str) -> float:
    d = defences.get(name)
    t = time.perf_counter()
    face = faces.detect_and_align(faces.load_image(png))
    d.protect(faces.chips_to_tensor(face.chip150), d.Params(), torch.Generator().manual_seed(0))
    return time.perf_counter() - t


def page_seconds(png: bytes, name: str) -> float:
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/protect.py").run()
    at.selectbox(key="defence_name").set_value(name).run()
    at.radio(key="face_source").set_value("Upload").run()
    t = time.perf_counter()
    at.file_uploader(key="face_upload").set_value(("face.png", png, "image/png")).run()
    elapsed = time.perf_counter() - t
    captions = [i.proto.imgs[0].caption for i in at.get("image")]
    assert any("what the server receives" in c for c in captions), (name, at.exception)
    return elapsed


def first_frame_seconds() -> float:
    face = faces.detect_and_align(data.astronaut())
    x = faces.chips_to_tensor(face.chip150)
    d = defences.get("split")
    p = d.Params()
    case = AttackCase(original=x, protected=d.protect(x, p, torch.Generator()), defence=d,
                      defence_params=p)
    attack = attacks.get("whitebox_inversion")
    runner = LocalRunner()
    t = time.perf_counter()
    handle = runner.submit(lambda ctx: attack.run(case, attack.Params(), ctx.progress,
                                                  ctx.cancelled))
    while handle.latest_preview is None and not handle.done():
        time.sleep(0.01)
    elapsed = time.perf_counter() - t
    handle.cancel()
    runner.shutdown()
    return elapsed


def main() -> None:
    png = upload_bytes()
    page_seconds(png, "none")  # warm the models and Streamlit's caches
    print(f"{'step':<44}{'engine s':>10}{'page s':>9}{'target':>8}{'ok':>5}")
    for name in defences.names():
        if defences.get(name).optimising:
            continue
        eng, page = engine_seconds(png, name), page_seconds(png, name)
        print(f"{'upload -> protected preview: ' + name:<44}{eng:>10.2f}{page:>9.2f}"
              f"{'< 1':>8}{'yes' if page < 1 else 'NO':>5}")
    first = first_frame_seconds()
    print(f"{'launch -> first white-box frame':<44}{'':>10}{first:>9.2f}{'< 3':>8}"
          f"{'yes' if first < 3 else 'NO':>5}")


if __name__ == "__main__":
    main()
