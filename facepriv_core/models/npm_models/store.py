"""Where fetched packages live and whether an install can be trusted: the cache layout, the
verification marker, and the model lookup and availability check the zoo uses.

Reads markers and model jsons only, never weights, so availability is cheap to ask.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facepriv_core.cache import ENV_CACHE
from facepriv_core.cache import cache_root as cache_dir
from facepriv_core.models.npm_models.integrity import file_sha256
from facepriv_core.models.npm_models.packages import ModelNotFetchedError, get_package

MARKER = ".facepriv-verified.json"

__all__ = ["ENV_CACHE", "MARKER", "availability_check", "cache_dir", "fetch_command",
           "installed_files", "model_file", "package_dir", "read_marker", "verify"]


def package_dir(name: str, cache: str | Path | None = None) -> Path:
    """Where a package's files live once fetched: <cache>/npm/<name>/<version>."""
    pkg = get_package(name)
    return cache_dir(cache) / "npm" / pkg.name / pkg.version


def fetch_command(name: str, cache: str | Path | None = None) -> str:
    """The command that fetches `name` into `cache` (the hint every 'missing' message gives)."""
    command = f"facepriv models fetch {name}"
    return f"{command} --cache-dir {cache}" if cache is not None and str(cache) else command


def read_marker(root: Path) -> dict[str, Any] | None:
    """The verification marker of an install directory, or None when absent or unreadable."""
    try:
        data = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify(name: str, cache: str | Path | None = None, deep: bool = False) -> str | None:
    """None when `name` is installed and verified, else why not.

    The marker must carry the pinned version and integrity and every file it lists must have
    its recorded size (cheap: stat only). `deep` also re-hashes each file against the SHA-256
    recorded at install time, which catches later corruption.
    """
    pkg = get_package(name)
    root = package_dir(name, cache)
    hint = f"run `{fetch_command(name, cache)}`"
    marker = read_marker(root)
    if marker is None:
        return f"model package '{name}' ({pkg.pinned}) is not fetched; {hint}"
    if marker.get("version") != pkg.version or marker.get("integrity") != pkg.integrity:
        return f"model package '{name}' at {root} is not the pinned {pkg.pinned}; {hint} --force"
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return f"model package '{name}' at {root} has an unreadable marker; {hint} --force"
    for rel, info in files.items():
        path = root / rel
        if not isinstance(info, dict):
            return f"model package '{name}' at {root} has an unreadable marker; {hint} --force"
        try:
            size = path.stat().st_size
        except OSError:
            return f"'{rel}' is missing from {root}; {hint} --force"
        if size != info.get("size"):
            return f"'{rel}' in {root} has changed size; {hint} --force"
        if deep and file_sha256(path) != info.get("sha256"):
            return f"'{rel}' in {root} has changed content; {hint} --force"
    return None


def installed_files(name: str, cache: str | Path | None = None) -> list[str]:
    """The files of a verified install, relative to package_dir (empty when not verified)."""
    if verify(name, cache) is not None:
        return []
    marker = read_marker(package_dir(name, cache)) or {}
    return sorted(marker.get("files", {}))


def _model_problem(package: str, model: str, cache: str | Path | None) -> str | None:
    """None when `model`'s json and every weight shard it lists are in a verified install."""
    reason = verify(package, cache)
    if reason is not None:
        return reason
    root = package_dir(package, cache)
    files = (read_marker(root) or {}).get("files", {})
    rel = f"models/{model}.json"
    if "/" in model or "\\" in model or rel not in files:
        known = sorted(f[len("models/"):-len(".json")] for f in files
                       if f.startswith("models/") and f.endswith(".json"))
        return (f"model package '{package}' has no model '{model}' "
                f"(it has: {', '.join(known)})")
    try:
        manifest = json.loads((root / rel).read_text()).get("weightsManifest", [])
        shards = [p for group in manifest for p in group.get("paths", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return f"'{rel}' in {root} is not a TensorFlow.js model json"
    missing = [p for p in shards if f"models/{p}" not in files]
    if missing:
        return f"weight shards {missing} of '{model}' are missing from {root}"
    return None


def model_file(name: str, model: str, cache: str | Path | None = None) -> Path:
    """<package_dir>/models/<model>.json of a verified install, with its weight shards present."""
    reason = _model_problem(name, model, cache)
    if reason is not None:
        raise ModelNotFetchedError(reason)
    return package_dir(name, cache) / "models" / f"{model}.json"


def availability_check(package: str, model: str) -> Callable[[], str | None]:
    """A registry check: None when the model can load, else the reason with the fetch command.

    Reads the marker and the model's json only, never weights. The cache is resolved at call
    time, so $FACEPRIV_CACHE_DIR set after import is honoured.
    """
    get_package(package)  # a typo in the catalog fails at import, not later in the app

    def check() -> str | None:
        return _model_problem(package, model, None)

    return check
