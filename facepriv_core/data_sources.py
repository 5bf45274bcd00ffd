"""Which face datasets this machine has, where, and how to get the public ones.

Audits, the app's dataset pickers and the attacks that need auxiliary faces all ask here, so a
bare name (`olivetti`, `sfhq`, `lfw`) means the same thing everywhere. Roots are searched in
order: `$FACEPRIV_DATA` (one or more folders, separated like PATH), the FacePriv cache (where
`facepriv data fetch` puts scikit-learn's downloads), then `../shared/data` beside the working
directory and beside a source checkout (the project's development data). Nothing is
downloaded unless `fetch` is called: every other function only looks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facepriv_core.cache import cache_root
from facepriv_core.errors import FacePrivError

ENV_DATA = "FACEPRIV_DATA"
FETCHABLE = ("olivetti", "lfw")


class DataFetchError(FacePrivError):
    """A public dataset could not be downloaded (no network, or the source refused)."""


@dataclass(frozen=True)
class DataSource:
    """A dataset found on this machine: a name, the spec that loads it, and what it is."""

    name: str
    spec: str
    path: str
    description: str
    origin: str  # which root it was found under: FACEPRIV_DATA, cache or shared

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sklearn_home() -> Path:
    """scikit-learn's data_home for FacePriv's downloads (kept inside the FacePriv cache)."""
    return cache_root() / "data" / "scikit_learn"


def data_roots() -> list[tuple[str, Path]]:
    """(origin, folder) pairs to search, most specific first, existing folders only."""
    roots: list[tuple[str, Path]] = []
    for part in os.environ.get(ENV_DATA, "").split(os.pathsep):
        if part.strip():
            roots.append((ENV_DATA, Path(part.strip()).expanduser()))
    roots.append(("cache", cache_root() / "data"))
    checkout = Path(__file__).resolve().parents[1]
    for base in (Path.cwd(), checkout):
        roots.append(("shared", (base.parent / "shared" / "data").resolve()))
    seen: set[Path] = set()
    out = []
    for origin, root in roots:
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        out.append((origin, root))
    return out


def _olivetti_file(root: Path) -> Path | None:
    for candidate in (root / "olivetti" / "olivettifaces.mat", root / "olivettifaces.mat"):
        if candidate.is_file():
            return candidate
    return None


def _sfhq_folder(root: Path) -> Path | None:
    for candidate in (root / "sfhq", root):
        if (candidate / "manifest.csv").is_file():
            return candidate
    return None


def available_datasets() -> list[DataSource]:
    """Every dataset found on this machine, first match per name wins (FACEPRIV_DATA first)."""
    found: dict[str, DataSource] = {}
    for origin, root in data_roots():
        mat = _olivetti_file(root)
        if mat is not None and "olivetti" not in found:
            found["olivetti"] = DataSource(
                "olivetti", f"olivetti:{mat}", str(mat),
                "AT&T (Olivetti) faces: 40 people x 10 greyscale 64x64 aligned crops", origin)
        sfhq = _sfhq_folder(root)
        if sfhq is not None and "sfhq" not in found:
            found["sfhq"] = DataSource(
                "sfhq", f"sfhq:{sfhq}", str(sfhq),
                "SFHQ synthetic faces (StyleGAN2): one synthetic person per crop, weak "
                "attribute labels", origin)
    home = sklearn_home()
    if "olivetti" not in found and (home / "olivetti.pkz").is_file():
        found["olivetti"] = DataSource(
            "olivetti", "olivetti", str(home / "olivetti.pkz"),
            "AT&T (Olivetti) faces from scikit-learn's download", "cache")
    if (home / "lfw_home").is_dir():
        found["lfw"] = DataSource(
            "lfw", "lfw", str(home / "lfw_home"),
            "Labeled Faces in the Wild (people with >= 2 photos), scikit-learn's download",
            "cache")
    return list(found.values())


def find(name: str) -> DataSource | None:
    """The dataset called `name` on this machine, or None."""
    return next((d for d in available_datasets() if d.name == name), None)


def default_aux() -> str | None:
    """The default auxiliary set for attacks and defences that train on other people's faces.

    SFHQ first: synthetic people, never the audited ones, and colour photos like real uploads.
    Then LFW. None when neither is here (callers then say exactly what to pass)."""
    for name in ("sfhq", "lfw"):
        source = find(name)
        if source is not None:
            return source.spec
    return None


def missing_aux_message(who: str) -> str:
    """What to tell the user when `who` needs auxiliary faces and none were found."""
    return (f"{who} trains on auxiliary faces of other people and none was found on this "
            f"machine: set `aux` to a dataset spec (sfhq:PATH to a folder with manifest.csv, "
            f"folder:PATH with one sub-folder per person, or lfw after `facepriv data fetch "
            f"lfw`), or point ${ENV_DATA} at a folder holding sfhq/")


def fetch(name: str, progress: Callable[[str], None] | None = None) -> DataSource:
    """Download a public dataset with scikit-learn's fetcher into the FacePriv cache."""
    if name not in FETCHABLE:
        raise DataFetchError(f"cannot fetch '{name}': fetchable datasets are "
                             f"{', '.join(FETCHABLE)}")
    home = sklearn_home()
    home.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    say(f"fetching {name} with scikit-learn into {home}")
    try:
        if name == "olivetti":
            from sklearn.datasets import fetch_olivetti_faces

            fetch_olivetti_faces(data_home=str(home), download_if_missing=True)
        else:
            from sklearn.datasets import fetch_lfw_people

            fetch_lfw_people(data_home=str(home), min_faces_per_person=2, color=True,
                             resize=1.0, slice_=None, download_if_missing=True)
    except OSError as exc:  # URLError, HTTPError and socket errors are OSErrors
        raise DataFetchError(f"could not download {name}: {exc}. Is the network open? "
                             f"Otherwise copy the files elsewhere and set ${ENV_DATA}") from exc
    source = find(name)
    if source is None:  # pragma: no cover - scikit-learn changed its file layout
        raise DataFetchError(f"{name} was downloaded but not found under {home}")
    return source
