"""The one check behind every user-named file read whole (checkpoints, specs, zip datasets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facepriv_core import files
from facepriv_core.errors import SpecError


def test_sizes_read_like_people_write_them() -> None:
    assert files.size_text(512) == "512 bytes"
    assert files.size_text(1536) == "1.5 KiB"
    assert files.size_text(64 * 1024) == "64 KiB"
    assert files.size_text(2 * 1024**3) == "2.0 GiB"


def test_missing_special_and_oversized_files_get_the_callers_error(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_bytes(b"a: 1\n")
    assert files.read_capped(ok, "spec file", 100, SpecError) == b"a: 1\n"
    with pytest.raises(SpecError, match="not found"):
        files.regular_file(tmp_path / "nope", "spec file", 100, SpecError)
    with pytest.raises(SpecError, match="not a regular file"):
        files.regular_file(tmp_path, "spec file", 100, SpecError)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):  # never opened: no block
        files.read_capped(fifo, "spec file", 100, SpecError)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(SpecError, match=r"is 2\.0 KiB, over the 1\.0 KiB limit"):
        files.read_capped(big, "spec file", 1024, SpecError)
