"""Opening a user-named file safely: it must exist, be a regular file and fit under a cap.

Checkpoints, spec files and zip datasets are all named by the user and read whole; a FIFO
would block, a device or a directory would fail late with an OS error, and a huge file would
fill memory. One check, with the caller's typed error, so each says the same thing.
A leaf module: `FacePrivError` subclasses are passed in, not imported.
"""

from __future__ import annotations

import stat
from pathlib import Path


def size_text(n: int) -> str:
    """1536 -> '1.5 KiB'; sizes in binary units, one decimal below 10."""
    value, unit = float(n), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{int(value)} bytes"
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def regular_file(path: str | Path, what: str, max_bytes: int, error: type[Exception]
                 ) -> Path:
    """`path` if it is an existing regular file of at most `max_bytes`, else `error`."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise error(f"{what} '{p}' not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} '{p}' is not a regular file")
    if st.st_size > max_bytes:
        raise error(f"{what} '{p}' is {size_text(st.st_size)}, over the "
                    f"{size_text(max_bytes)} limit")
    return p


def read_capped(path: str | Path, what: str, max_bytes: int, error: type[Exception]) -> bytes:
    """The bytes of a checked regular file (at most max_bytes + 1 are read, so a file that
    grows after the check is still caught by the caller's parser or size test)."""
    p = regular_file(path, what, max_bytes, error)
    try:
        with open(p, "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what} '{p}' cannot be read: {exc.strerror or exc}") from None
