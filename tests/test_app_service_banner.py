"""The Protect page never shows PPFR-FD's utility from an untrained service without a banner."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def test_untrained_ppfr_fd_service_is_flagged_and_offers_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRIV_CACHE_DIR", str(tmp_path))  # no trained service here
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.switch_page("../pages/protect.py").run()
    at.selectbox[0].set_value("pixelate").run()
    assert not at.exception, at.exception
    assert not any("not trained yet" in w.value for w in at.warning)
    at.selectbox[0].set_value("ppfr_fd").run()
    assert not at.exception, at.exception
    assert any("not trained yet" in w.value and "mean nothing" in w.value for w in at.warning)
    assert any(b.label.startswith("Train the service") for b in at.button)
