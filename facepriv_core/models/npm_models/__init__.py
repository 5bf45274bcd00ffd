"""Obtain and locate pinned npm packages of model files (TensorFlow.js graph models).

Some face models ship only on the npm registry. They are fetched once, on request
(`facepriv models fetch NAME`), never implicitly: `npm pack` downloads the tarball (or the user
hands one over with `--tarball` on an offline machine), its SHA-512 is checked against the
pinned SRI string rather than against anything npm reports, and only the model files, licence
and package.json are extracted. Extraction goes into a temporary sibling directory that is
renamed into place last, with a marker recording the integrity and every file's size, so an
interrupted fetch never leaves an install that looks verified.

One job per module: packages (the pins and the errors), integrity (SRI digests), tarball
(safe extraction), npm_pack (running npm), store (the cache layout, verification and model
lookup the zoo uses), fetch (putting it together).
"""

from facepriv_core.models.npm_models.fetch import fetch
from facepriv_core.models.npm_models.integrity import check_integrity, file_sha256, sri_of
from facepriv_core.models.npm_models.packages import (
    PACKAGES,
    IntegrityError,
    ModelNotFetchedError,
    NpmCommandError,
    NpmFetchError,
    NpmNotFoundError,
    NpmPackage,
    TarballRefusedError,
    UnknownPackageError,
    get_package,
)
from facepriv_core.models.npm_models.store import (
    ENV_CACHE,
    MARKER,
    availability_check,
    cache_dir,
    fetch_command,
    installed_files,
    model_file,
    package_dir,
    verify,
)

__all__ = [
    "ENV_CACHE", "MARKER", "PACKAGES", "IntegrityError", "ModelNotFetchedError",
    "NpmCommandError", "NpmFetchError", "NpmNotFoundError", "NpmPackage",
    "TarballRefusedError", "UnknownPackageError", "availability_check", "cache_dir",
    "check_integrity", "fetch", "fetch_command", "file_sha256", "get_package",
    "installed_files", "model_file", "package_dir", "sri_of", "verify",
]
