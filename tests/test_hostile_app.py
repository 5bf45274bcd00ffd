"""Hostile inputs through the app (AppTest): uploads and zips end in words, never a traceback or
an exception class name; hosted mode hides server paths; the app makes no outbound call."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _loopback import free_port
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
CLASS_NAMES = ("Error:", "Exception", "Traceback", "BadZipFile", "DatasetError", "ValueError",
               "UnidentifiedImageError", "DOS attack")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png() -> bytes:
    from tests.test_hostile_inputs import png_header_only

    return png_header_only(40000, 40000)


UPLOADS = {
    "text as png": (b"not an image at all", "not an image"),
    "empty": (b"", "empty"),
    "pixel bomb": (_bomb_png(), "megapixels"),
    "truncated png": (_png(np.zeros((300, 300, 3), np.uint8))[:200], "not an image"),
    "8x8": (_png(np.zeros((8, 8, 3), np.uint8)), "pixels"),
}


def _words_only(texts: list[str]) -> None:
    for text in texts:
        assert not any(c in text for c in CLASS_NAMES), text


def test_hostile_uploads_end_in_words() -> None:
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    assert not at.exception, at.exception
    at.radio(key="face_source").set_value(at.radio(key="face_source").options[1]).run()
    label = at.file_uploader[0].label
    assert all(fmt in label for fmt in ("JPEG", "PNG", "WebP", "GIF", "BMP", "TIFF"))
    assert "MiB" in label
    for name, (data, words) in UPLOADS.items():
        at.file_uploader[0].set_value((f"{name}.png", data, "image/png")).run()
        assert not at.exception, (name, at.exception)
        errors = [e.value for e in at.error]
        assert errors and words in errors[0].lower(), (name, errors)
        _words_only(errors)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return buf.getvalue()


def test_benchmark_zip_of_a_big_member_fails_in_words() -> None:
    big = _zip({"ann/big.jpg": b"\0" * (60 * 2**20)})  # 60 MiB member, 60 KB zip
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("../pages/benchmark.py").run()
    assert not at.exception, at.exception
    source = at.radio(key="bench_source")
    source.set_value(next(o for o in source.options if "zip" in o.lower())).run()
    assert "MiB" in at.file_uploader[0].label
    at.file_uploader[0].set_value(("faces.zip", big, "application/zip")).run()
    run_button = next(b for b in at.button if "benchmark" in b.label.lower())
    run_button.click().run()
    for _ in range(120):
        if at.error:
            break
        time.sleep(0.5)
        at.run()
    errors = [e.value for e in at.error]
    assert errors and "per photo" in " ".join(errors), errors
    _words_only(errors)


def test_hosted_mode_offers_no_server_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRIV_HOSTED", "1")
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("../pages/benchmark.py").run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="bench_dataset")
    assert not any("other" in str(o).lower() for o in picker.options)
    assert not any("/" in str(o) for o in picker.options)  # no server path shown
    assert not at.text_input


# ---------------------------------------------------------------- no outbound calls

GUARD = r'''
import json, os, socket, sys
LOG = os.environ["NETGUARD_LOG"]
LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")

def note(kind, target):
    host = target[0] if isinstance(target, tuple) else str(target)
    if isinstance(host, bytes):
        host = host.decode()
    if not str(host).startswith(LOOPBACK) and not str(host).startswith("/"):
        with open(LOG, "a") as f:
            f.write(json.dumps([kind, str(target)]) + "\n")

_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, \
    socket.socket.sendto
_getaddrinfo = socket.getaddrinfo

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        note("connect", address)
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        note("connect", address)
    return _connect_ex(self, address)

def sendto(self, data, *args):
    note("sendto", args[-1])
    return _sendto(self, data, *args)

def getaddrinfo(host, *args, **kw):
    if host is not None:
        note("resolve", (host,))
    return _getaddrinfo(host, *args, **kw)

socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = \
    connect, connect_ex, sendto
socket.getaddrinfo = getaddrinfo
'''


def test_app_server_and_a_session_make_no_outbound_call(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real server starts headless on a loopback port with every socket call guarded; a
    session then runs the Face and Protect pages (models load, a face is aligned and
    protected) in-process under the same guard. Nothing may leave loopback."""
    log = tmp_path / "net.log"
    guard = tmp_path / "netguard.py"
    guard.write_text(GUARD)
    port = free_port()
    launcher = (f"exec(open({str(guard)!r}).read())\n"
                "from streamlit.web.cli import main\n"
                f"sys.argv = ['streamlit', 'run', {MAIN!r}, '--server.port', '{port}',"
                " '--server.address', '127.0.0.1', '--server.headless', 'true']\n"
                "main()\n")
    env = {**os.environ, "NETGUARD_LOG": str(log), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", launcher], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            page = r.read().decode()
        assert "<html" in page.lower()
    finally:
        server.terminate()
        server.wait(20)

    # The session: the page scripts run in-process under the guard.
    monkeypatch.setenv("NETGUARD_LOG", str(log))
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
             socket.getaddrinfo)
    exec(GUARD, {})
    try:
        at = AppTest.from_file(MAIN, default_timeout=300).run()
        assert not at.exception, at.exception
        at.switch_page("../pages/protect.py").run()
        assert not at.exception, at.exception
        control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        control.connect(("192.0.2.1", 9))  # TEST-NET-1: proves the guard sees a connection
        control.close()
    finally:
        (socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
         socket.getaddrinfo) = saved
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [["connect", "('192.0.2.1', 9)"]], calls
