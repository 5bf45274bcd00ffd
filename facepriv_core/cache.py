"""Where FacePriv keeps what it downloads or trains: one root for every cache.

`$FACEPRIV_CACHE_DIR`, else the platform's user cache folder (`~/.cache/facepriv` on Linux).
A leaf module (no FacePriv imports) so faces/, datasets and models can all use it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

ENV_CACHE = "FACEPRIV_CACHE_DIR"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache root: `override`, else $FACEPRIV_CACHE_DIR, else the platform's user cache."""
    if override is not None and str(override):
        return Path(override).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("facepriv"))


def config_digest(obj: Any) -> str:
    """Short stable hash of a JSON-able configuration: the name of its cached files."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> bool:
    """Write a cache file so a concurrent reader never sees half of it. False (and nothing
    written) when the cache is not writable: a cache that cannot keep a file only costs the
    work again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        return False
    return True
