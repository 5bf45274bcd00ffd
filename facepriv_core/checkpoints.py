"""Reading a checkpoint path a user typed: typed errors instead of unpickling tracebacks.

Checkpoint paths come from defence parameters (`server_path`, `adapter_path`, ...), so a user
can point them at anything: a missing file, a directory, /etc/passwd, a JPEG, a FIFO. Each is a
CheckpointError that says what was expected. Loading uses torch's weights-only unpickler (no
code runs), from regular files only, under a size cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facepriv_core import files
from facepriv_core.errors import CheckpointError

#: Larger files are refused before reading: FacePriv's checkpoints are tens of megabytes.
MAX_CHECKPOINT_BYTES = 2 * 1024**3


def regular_file(path: str | Path, what: str) -> Path:
    """`path` as a Path if it is an existing regular file under the cap, else a
    CheckpointError."""
    return files.regular_file(path, what, MAX_CHECKPOINT_BYTES, CheckpointError)


def load(path: str | Path, kind: str, what: str, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict at `path` whose "kind" is `kind`, or a CheckpointError."""
    import torch

    p = regular_file(path, what)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception:  # any unpickling failure means: not one of our checkpoints
        raise CheckpointError(f"'{p}' is not a {what} (not a torch checkpoint FacePriv "
                              "wrote)") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise CheckpointError(f"'{p}' is a torch file but not a {what}")
    return ckpt
