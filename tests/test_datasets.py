"""Dataset loaders and the seeded pair generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepriv_core import datasets


def test_olivetti_from_mat(olivetti_path: Path) -> None:
    ds = datasets.load(f"olivetti:{olivetti_path}")
    assert len(ds) == 400 and ds.aligned
    assert np.bincount(ds.identities).tolist() == [10] * 40
    img = ds.image(0)
    assert img.shape == (64, 64) and img.dtype == np.uint8
    # Upright orientation (the .mat stores images transposed): dlib's HOG detector only finds
    # upright frontal faces, so it must find one in most upscaled images.
    from skimage.transform import resize

    from facepriv_core.faces import detect

    def upscaled_rgb(i: int) -> np.ndarray:
        grey = np.round(resize(ds.image(i), (256, 256)) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    found = sum(bool(detect(upscaled_rgb(i))) for i in range(0, 400, 40))
    assert found >= 8


def test_sfhq_manifest(sfhq_dir: Path) -> None:
    rows = datasets.read_sfhq_manifest(sfhq_dir)
    assert len(rows) == 560
    babies = [r for r in rows if r.age_years == 1]
    assert babies and all((sfhq_dir / r.file).is_file() for r in babies)
    ds = datasets.load(f"sfhq:{sfhq_dir}")
    assert len(ds) == 560 and not ds.aligned


def test_folder_of_identities(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for person in ("alice", "bob"):
        (tmp_path / person).mkdir()
        for k in range(3):
            arr = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / person / f"{k}.png")
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    ds = datasets.load(f"folder:{tmp_path}")
    assert ds.identity_names == ["alice", "bob"]
    assert ds.identities.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.image(4).shape == (40, 40, 3)
    assert datasets.load(f"aligned:{tmp_path}").aligned


@pytest.mark.parametrize("spec", ["folder:", "nonsense:x", "folder:/does/not/exist"])
def test_bad_dataset_specs_are_clear(spec: str) -> None:
    with pytest.raises(datasets.DatasetError):
        datasets.load(spec)


def test_pairs_balanced_seeded_and_valid() -> None:
    ids = np.repeat(np.arange(40), 10)
    pairs, same = datasets.make_pairs(ids, pairs_per_label=1500, seed=3)
    assert same.sum() == (~same).sum() == 1500
    assert np.all((ids[pairs[:, 0]] == ids[pairs[:, 1]]) == same)
    assert len({tuple(p) for p in pairs}) == len(pairs)
    again, same2 = datasets.make_pairs(ids, pairs_per_label=1500, seed=3)
    assert np.array_equal(pairs, again) and np.array_equal(same, same2)
    other, _ = datasets.make_pairs(ids, pairs_per_label=1500, seed=4)
    assert not np.array_equal(pairs, other)


def test_limit_is_seeded_subset() -> None:
    ds = datasets.FaceDataset("x", np.arange(10), True, loader=lambda i: np.full((2, 2), i))
    sub = ds.limit(4, seed=1)
    assert len(sub) == 4
    assert [int(sub.image(k)[0, 0]) for k in range(4)] == sub.identities.tolist()


def test_zip_of_identities_read_in_memory(tmp_path: Path) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(buf, "w") as z:
        for person in ("ann", "ben"):
            for k in range(2):
                img = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                    img, format="PNG")
                z.writestr(f"faces/{person}/{k}.png", img.getvalue())
        z.writestr("faces/readme.txt", "not an image")
    ds = datasets.load_zip(buf.getvalue())
    assert ds.identity_names == ["ann", "ben"] and ds.identities.tolist() == [0, 0, 1, 1]
    assert ds.image(3).shape == (40, 40, 3)
    with pytest.raises(datasets.DatasetError, match="not a zip"):
        datasets.load_zip(b"plain bytes")
