"""Face datasets for audits: folder of identities, Olivetti, LFW, the SFHQ sample, and pairs.

Images load lazily (one at a time) so a large folder costs no memory up front. A dataset says
whether its images are already aligned crops (skip detection) or photos (detect and align).
"""

from __future__ import annotations

import csv
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepriv_core import data_sources, files
from facepriv_core.errors import FacePrivError
from facepriv_core.faces import InputError, detect_and_align, from_aligned, load_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm")


class DatasetError(FacePrivError, ValueError):
    """A dataset cannot be read; the message says what is wrong and how to fix it."""


@dataclass
class FaceDataset:
    """Images with an identity label each. `image(i)` returns uint8 RGB or greyscale (H, W[, 3])."""

    name: str
    identities: np.ndarray
    aligned: bool
    loader: Callable[[int], np.ndarray]
    keys: list[str] = field(default_factory=list)
    identity_names: list[str] = field(default_factory=list)
    #: Entries passed over while listing (dangling links, FIFOs, unreadable folders): why.
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.identities)

    def image(self, i: int) -> np.ndarray:
        return self.loader(i)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.image(i) for i in range(len(self)))

    def subset(self, indices: list[int] | np.ndarray) -> FaceDataset:
        idx = [int(i) for i in indices]
        return FaceDataset(
            name=self.name,
            identities=self.identities[idx],
            aligned=self.aligned,
            loader=lambda j: self.loader(idx[j]),
            keys=[self.keys[i] for i in idx] if self.keys else [],
            identity_names=self.identity_names,
            skipped=self.skipped,
        )

    def limit(self, n: int | None, seed: int = 0) -> FaceDataset:
        """At most n images, sampled without replacement by a seed, in their original order."""
        if n is None or n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))


def _read_file(path: Path) -> np.ndarray:
    return load_image(path)


def load_folder(path: str | Path, aligned: bool = False) -> FaceDataset:
    """One sub-folder per person, images inside; the sub-folder name is the identity."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"folder dataset '{root}' does not exist or is not a folder")
    files: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    skipped: dict[str, str] = {}
    for person in sorted(_entries(root, skipped)):
        if not _is_kind(person, stat.S_ISDIR):
            continue
        imgs = sorted(f for f in _entries(person, skipped)
                      if f.suffix.lower() in IMAGE_EXTENSIONS and _regular(f, root, skipped))
        if not imgs:
            continue
        names.append(person.name)
        files += imgs
        labels += [len(names) - 1] * len(imgs)
    if not files:
        passed = f"; {len(skipped)} entries skipped ({_first(skipped)})" if skipped else ""
        raise DatasetError(
            f"no images found under '{root}': expected one sub-folder per person holding "
            f"{', '.join(IMAGE_EXTENSIONS)} files{passed}"
        )
    return FaceDataset(
        name=f"folder:{root.name}",
        identities=np.asarray(labels),
        aligned=aligned,
        loader=lambda i: _read_file(files[i]),
        keys=[str(f.relative_to(root)) for f in files],
        identity_names=names,
        skipped=skipped,
    )


def _first(skipped: dict[str, str]) -> str:
    key = next(iter(skipped))
    return f"{key}: {skipped[key]}" + (", ..." if len(skipped) > 1 else "")


def _entries(folder: Path, skipped: dict[str, str]) -> list[Path]:
    """The entries of `folder`, or none (recorded in `skipped`) when it cannot be listed."""
    try:
        return list(folder.iterdir())
    except OSError as exc:
        skipped[str(folder)] = f"cannot be listed ({exc.strerror or exc})"
        return []


def _is_kind(path: Path, check: Callable[[int], bool]) -> bool:
    try:
        return check(path.stat().st_mode)
    except OSError:
        return False


def _regular(path: Path, root: Path, skipped: dict[str, str]) -> bool:
    """True for a regular file (through symlinks); anything else is skipped and counted:
    a dangling symlink, a FIFO (opening it would block), a socket or device, a folder."""
    key = str(path.relative_to(root))
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        skipped[key] = "dangling link" if path.is_symlink() else \
            f"unreadable ({exc.strerror or exc})"
        return False
    if not stat.S_ISREG(mode):
        skipped[key] = "not a regular file"
        return False
    return True


def olivetti_arrays(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (400, 64, 64), person ids) from olivettifaces.mat or sklearn's fetcher."""
    if path is None:
        found = data_sources.find("olivetti")
        if found is not None and found.spec != "olivetti":
            path = found.path
        else:
            from sklearn.datasets import fetch_olivetti_faces

            try:  # only scikit-learn's earlier download (`facepriv data fetch olivetti`)
                bunch = fetch_olivetti_faces(data_home=str(data_sources.sklearn_home()),
                                             download_if_missing=False)
            except OSError:
                raise DatasetError(
                    "the Olivetti faces are not on this machine: run `facepriv data fetch "
                    "olivetti`, pass olivetti:PATH to olivettifaces.mat, or set "
                    f"${data_sources.ENV_DATA} to a folder holding olivetti/olivettifaces.mat"
                ) from None
            images = np.round(bunch.images * 255).astype(np.uint8)
            return images, bunch.target.astype(int)
    import scipy.io

    p = Path(path)
    if p.is_dir():
        p = p / "olivettifaces.mat"
    if not p.is_file():
        raise DatasetError(f"Olivetti file '{p}' not found (expected olivettifaces.mat)")
    faces = scipy.io.loadmat(p)["faces"]
    images = faces.T.reshape(-1, 64, 64).transpose(0, 2, 1)
    images = np.ascontiguousarray(images).astype(np.uint8)
    return images, np.arange(len(images)) // 10


def load_olivetti(path: str | Path | None = None) -> FaceDataset:
    """AT&T (Olivetti) faces, 40 people x 10 greyscale 64x64 crops; aligned (skip detection)."""
    images, ids = olivetti_arrays(path)
    return FaceDataset(
        name="olivetti",
        identities=ids,
        aligned=True,
        loader=lambda i: images[i],
        keys=[f"s{ids[i] + 1}/{i % 10 + 1}" for i in range(len(images))],
        identity_names=[f"s{k + 1}" for k in range(int(ids.max()) + 1)],
    )


def load_lfw(min_faces_per_person: int = 2, data_home: str | None = None) -> FaceDataset:
    """LFW people from scikit-learn's download (`facepriv data fetch lfw` makes it)."""
    from sklearn.datasets import fetch_lfw_people


    try:
        bunch = fetch_lfw_people(min_faces_per_person=min_faces_per_person, color=True,
                                 resize=1.0, slice_=None, download_if_missing=False,
                                 data_home=data_home or str(data_sources.sklearn_home()))
    except OSError:
        raise DatasetError("LFW is not on this machine: run `facepriv data fetch lfw` "
                           "(needs the network once)") from None
    images = np.clip(bunch.images, 0, 255).astype(np.uint8)
    return FaceDataset(
        name="lfw",
        identities=bunch.target.astype(int),
        aligned=False,
        loader=lambda i: images[i],
        identity_names=list(bunch.target_names),
    )


@dataclass(frozen=True)
class SfhqRow:
    """One line of ../shared/data/sfhq/manifest.csv (weak labels from the grid it sits in)."""

    file: str
    grid: str
    row: int
    col: int
    age_group: str
    age_years: float | None
    ethnicity: str
    gender: str
    expression: str


def read_sfhq_manifest(path: str | Path) -> list[SfhqRow]:
    p = Path(path)
    manifest = p / "manifest.csv" if p.is_dir() else p
    if not manifest.is_file():
        raise DatasetError(f"SFHQ manifest '{manifest}' not found")
    with open(manifest, newline="") as f:
        return [
            SfhqRow(
                file=r["file"], grid=r["grid"], row=int(r["row"]), col=int(r["col"]),
                age_group=r["age_group"],
                age_years=float(r["age_years"]) if r["age_years"] else None,
                ethnicity=r["ethnicity"], gender=r["gender"], expression=r["expression"],
            )
            for r in csv.DictReader(f)
        ]


def load_sfhq(path: str | Path) -> FaceDataset:
    """The SFHQ crops; every crop is its own synthetic identity (photos: detect and align)."""
    p = Path(path)
    root = p if p.is_dir() else p.parent
    rows = read_sfhq_manifest(p)
    return FaceDataset(
        name="sfhq",
        identities=np.arange(len(rows)),
        aligned=False,
        loader=lambda i: _read_file(root / rows[i].file),
        keys=[r.file for r in rows],
    )


def load(spec: str) -> FaceDataset:
    """A dataset from 'olivetti[:PATH]', 'folder:PATH', 'aligned:PATH', 'sfhq[:PATH]' or 'lfw'.

    A bare name is looked up among the datasets this machine has (facepriv_core.data_sources).
    """
    kind, _, arg = spec.partition(":")
    if kind == "olivetti":
        return load_olivetti(arg or None)
    if kind in ("folder", "aligned"):
        if not arg:
            raise DatasetError(f"'{kind}:' needs a path, e.g. {kind}:/data/faces")
        return load_folder(arg, aligned=kind == "aligned")
    if kind == "sfhq":
        if not arg:
            found = data_sources.find("sfhq")
            if found is None:
                raise DatasetError("no SFHQ folder found: pass sfhq:PATH (the folder holding "
                                   f"manifest.csv) or set ${data_sources.ENV_DATA}")
            arg = found.path
        return load_sfhq(arg)
    if kind == "lfw":
        return load_lfw()
    if kind == "zip":
        if not arg:
            raise DatasetError("'zip:' needs a path, e.g. zip:/data/faces.zip")
        return load_zip(_read_zip_file(Path(arg)), name=Path(arg).name)
    raise DatasetError(
        f"unknown dataset '{spec}'; use olivetti[:PATH], folder:PATH, aligned:PATH, "
        "zip:PATH, sfhq[:PATH] or lfw (`facepriv data list` shows what this machine has)"
    )


def _same_pairs_at(groups: list[np.ndarray], picks: np.ndarray) -> list[tuple[int, int]]:
    """The same-person pairs at sorted positions `picks` of the list every group's pairs
    (i, j), i before j, would make in order, without building that list (13k faces of a few
    people hold millions of pairs)."""
    out: list[tuple[int, int]] = []
    offset = 0
    for members in groups:
        m = len(members)
        count = m * (m - 1) // 2
        lo, hi = np.searchsorted(picks, [offset, offset + count])
        if hi > lo:
            k = picks[lo:hi] - offset
            a = np.arange(m - 1)
            starts = a * (2 * m - a - 1) // 2  # position of pair (a, a + 1) in the group
            first = np.searchsorted(starts, k, side="right") - 1
            second = first + 1 + (k - starts[first])
            out += [(int(members[i]), int(members[j])) for i, j in zip(first, second,
                                                                        strict=True)]
        offset += count
    return out


def make_pairs(identities: np.ndarray, pairs_per_label: int | None = 1500, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Balanced same/different pairs: (pairs (P, 2) int, same (P,) bool), seeded.

    Takes every same-identity pair (or `pairs_per_label` of them, sampled) and as many
    distinct different-identity pairs drawn at random: at most `pairs_per_label` pairs of
    each label (same, different), so P <= 2 * pairs_per_label.
    """
    rng = np.random.default_rng(seed)
    ids = np.asarray(identities)
    groups = [np.flatnonzero(ids == label) for label in np.unique(ids)]
    total = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    if not total:
        raise DatasetError("no identity has two images: same-person pairs cannot be formed")
    if pairs_per_label is not None and total > pairs_per_label:
        picks = np.sort(rng.choice(total, pairs_per_label, replace=False))
        same = _same_pairs_at(groups, picks)
    else:
        same = [(int(i), int(j)) for members in groups
                for k, i in enumerate(members) for j in members[k + 1:]]
    n_diff_possible = (len(ids) * (len(ids) - 1)) // 2 - sum(
        (c * (c - 1)) // 2 for c in np.unique(ids, return_counts=True)[1]
    )
    n_diff = min(len(same), n_diff_possible)
    diff: set[tuple[int, int]] = set()
    while len(diff) < n_diff:
        i, j = rng.integers(0, len(ids), size=2)
        if ids[i] != ids[j]:
            diff.add((int(min(i, j)), int(max(i, j))))
    pairs = np.asarray(same + sorted(diff), dtype=int)
    labels = np.asarray([True] * len(same) + [False] * len(diff))
    order = rng.permutation(len(pairs))
    return pairs[order], labels[order]


@dataclass
class AlignedChips:
    """dlib 150 chips of a dataset, with the indices that made it and why others did not."""

    chips: np.ndarray
    indices: np.ndarray
    failures: dict[str, str]


def align_dataset(dataset: FaceDataset, progress: Callable[[int, int], None] | None = None,
                  detector: str = "hog") -> AlignedChips:
    """Align every image (skip-detection for aligned datasets) with `detector` (hog, mmod or
    auto); faces that fail are reported."""
    chips, kept, failures = [], [], {}
    for i in range(len(dataset)):
        key = dataset.keys[i] if dataset.keys else str(i)
        try:
            img = dataset.image(i)
            face = (from_aligned(img) if dataset.aligned
                    else detect_and_align(img, method=detector))  # type: ignore[arg-type]
        except InputError as exc:
            failures[key] = str(exc)
        else:
            chips.append(face.chip150)
            kept.append(i)
        if progress:
            progress(i + 1, len(dataset))
    if not chips:
        raise DatasetError(f"no usable face in dataset '{dataset.name}'")
    return AlignedChips(np.stack(chips), np.asarray(kept), failures)


#: Members with these endings are archives inside the archive: refused, never opened.
ARCHIVE_EXTENSIONS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")


def _zip_member_error(member: str, why: str) -> Any:
    from facepriv_core.faces import InputError

    return InputError(f"{member}: {why}")


def _read_zip_file(path: Path) -> bytes:
    """A zip file's bytes: a regular file under the total cap (the archive is compressed, so
    its own size is at most what its photos may add up to)."""
    from facepriv_core.limits import current

    return files.read_capped(path, "zip dataset", current().zip_total_bytes, DatasetError)


def load_zip(data: bytes, aligned: bool = False, name: str = "upload") -> FaceDataset:
    """A folder-of-identities packed in a zip (person/image.jpg), read in memory only: an
    uploaded archive is never extracted to disk.

    Hostile archives are refused before any member is decompressed: more members than the
    cap, a member or a total whose declared size is over the caps (facepriv_core.limits),
    encrypted members, archives inside the archive. Reading a member streams it with the cap,
    so a member that lies about its size stops at the cap (and fails its CRC check); such a
    member, or one that is corrupt, is skipped and reported like a photo without a face.
    """
    import io
    import zipfile

    from facepriv_core.faces.decode import mib
    from facepriv_core.limits import current

    caps = current()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, RuntimeError):
        raise DatasetError("the upload is not a zip archive (or a damaged one): pack one "
                           "folder per person (person/photo.jpg) with any zip tool") from None
    if len(infos) > caps.zip_members:
        raise DatasetError(f"the zip holds {len(infos)} entries; the limit is "
                           f"{caps.zip_members}")
    nested = [i.filename for i in infos if i.filename.lower().endswith(ARCHIVE_EXTENSIONS)]
    if nested:
        raise DatasetError(f"the zip holds other archives ({nested[0]}): archives inside the "
                           "archive are not opened; pack the photos themselves")
    images = [
        i for i in infos
        if not i.is_dir() and i.filename.lower().endswith(IMAGE_EXTENSIONS)
        and i.filename.count("/") >= 1 and not i.filename.startswith(("__MACOSX/", "."))
        and "/." not in i.filename
    ]
    for i in images:
        if i.file_size > caps.zip_member_bytes:
            raise DatasetError(f"zip member {i.filename} is {mib(i.file_size)} uncompressed; "
                               f"the limit is {mib(caps.zip_member_bytes)} per photo")
        if i.flag_bits & 0x1:
            raise DatasetError(f"zip member {i.filename} is encrypted: pack the photos "
                               "without a password")
    total = sum(i.file_size for i in images)
    if total > caps.zip_total_bytes:
        raise DatasetError(f"the zip's photos add up to {mib(total)} uncompressed; the limit "
                           f"is {mib(caps.zip_total_bytes)}")
    members = sorted(i.filename for i in images)
    if not members:
        raise DatasetError("no images found in the zip: expected one folder per person "
                           "(person/photo.jpg)")
    people = sorted({m.rsplit("/", 2)[-2] for m in members})
    read_total = [0]

    def read_member(member: str) -> bytes:
        cap = caps.zip_member_bytes
        try:
            with archive.open(member) as f:
                blob = f.read(cap + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError):
            raise _zip_member_error(member, "the zip entry is damaged (its checksum or "
                                    "compressed data is wrong); re-create the zip") from None
        if len(blob) > cap:
            raise _zip_member_error(member, f"larger than the {mib(cap)} limit once "
                                    "uncompressed")
        read_total[0] += len(blob)
        if read_total[0] > caps.zip_total_bytes:
            raise DatasetError(f"the zip's photos add up to more than "
                               f"{mib(caps.zip_total_bytes)} once uncompressed")
        return blob

    def read(i: int) -> np.ndarray:
        try:
            return load_image(read_member(members[i]))
        except InputError as exc:
            if str(exc).startswith(members[i]):
                raise
            raise InputError(f"{members[i]}: {exc}") from None

    return FaceDataset(
        name=f"zip:{name}",
        identities=np.asarray([people.index(m.rsplit("/", 2)[-2]) for m in members]),
        aligned=aligned,
        loader=read,
        keys=members,
        identity_names=people,
    )
