"""A corpus of hostile and awkward inputs, generated in tmp_path: images, YAML specs, zips,
folders and command lines. Each case asserts a clear typed error (one line, no traceback) or
correct acceptance; the bombs also run in a subprocess whose peak RSS must stay bounded."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepriv_core import datasets, limits, specfile
from facepriv_core.errors import FacePrivError, InvalidParamsError, SpecError
from facepriv_core.faces import (
    EmptyInputError,
    ImageTooLargeError,
    ImageTooSmallError,
    InputError,
    NotAnImageError,
    load_image,
)

ROOT = Path(__file__).resolve().parents[1]
#: Growth of peak RSS allowed while a bomb is read (after the imports): a billion-laughs
#: expansion or a 1 GiB member would take gigabytes; refusing them costs a few megabytes.
BOMB_RSS_MB = 64


def encode(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def face_like(h: int = 96, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT: a decompression bomb's
    front, refused from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def float_tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.float32), mode="F").save(buf, format="TIFF")
    return buf.getvalue()


def one_line_user_error(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, FacePrivError), type(exc)
    assert text and "\n" not in text and "Traceback" not in text
    for leak in ("DOS attack", "decompression bomb", "errors.pydantic.dev", "PIL."):
        assert leak not in text, text


# ---------------------------------------------------------------- images (library path)

BAD_IMAGES: dict[str, tuple[Callable[[], bytes], type[InputError]]] = {
    "empty": (lambda: b"", EmptyInputError),
    "random bytes": (lambda: np.random.default_rng(1).bytes(4096), NotAnImageError),
    "text": (lambda: b"hello, this is a text file\n" * 20, NotAnImageError),
    "truncated jpeg": (lambda: encode(face_like(200, 200), "JPEG")[:600], NotAnImageError),
    "truncated png": (lambda: encode(face_like(200, 200), "PNG")[:300], NotAnImageError),
    "bomb header 30000x30000": (lambda: png_header_only(30000, 30000), ImageTooLargeError),
    "header over the cap": (lambda: png_header_only(9000, 5000), ImageTooLargeError),
    "8x8 pixels": (lambda: encode(face_like(8, 8), "PNG"), ImageTooSmallError),
    "eps": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",
            NotAnImageError),
    "pdf": (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", NotAnImageError),
    "svg": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg' width='99' height='99'/>",
            NotAnImageError),
    "all-NaN float tiff": (lambda: float_tiff(np.full((64, 64), np.nan)), NotAnImageError),
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_image_bytes_are_typed_errors(name: str) -> None:
    make, kind = BAD_IMAGES[name]
    with pytest.raises(kind) as info:
        load_image(make())
    one_line_user_error(info.value)


def test_byte_cap_message_uses_the_cap_in_mib() -> None:
    with pytest.raises(ImageTooLargeError, match="1 MiB limit") as info:
        load_image(b"\xff" * (2**20 + 1), max_bytes=2**20)
    one_line_user_error(info.value)


@pytest.mark.parametrize("kind", ["fifo", "dangling link", "directory", "missing"])
def test_bad_paths_fail_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.jpg"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling link":
        path.symlink_to(tmp_path / "nowhere.jpg")
    elif kind == "directory":
        path.mkdir()
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            load_image(path)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"load_image blocked on a {kind}"
    assert len(errors) == 1 and isinstance(errors[0], InputError), errors
    one_line_user_error(errors[0])


def test_float_tiff_with_a_few_nans_keeps_its_picture() -> None:
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    ramp[5, 5] = ramp[40, 12] = np.nan
    ramp[7, 30] = np.inf
    rgb = load_image(float_tiff(ramp))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert rgb[:, -1].mean() > 240 and rgb[:, 0].mean() < 15  # the ramp, not a black frame


ACCEPTED: dict[str, Callable[[], bytes]] = {
    "16-bit png": lambda: encode((np.arange(96 * 80, dtype=np.uint16).reshape(96, 80) * 7),
                                 "PNG"),
    "cmyk jpeg": lambda: _cmyk_jpeg(),
    "palette png with transparency": lambda: _palette_png(),
    "animated gif": lambda: _animated_gif(),
    "webp": lambda: encode(face_like(), "WEBP"),
    "bmp": lambda: encode(face_like(), "BMP"),
}


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face_like()).convert("CMYK").save(buf, format="JPEG")
    return buf.getvalue()


def _palette_png() -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(face_like()).convert("P")
    im.info["transparency"] = 0
    im.save(buf, format="PNG", transparency=0)
    return buf.getvalue()


def _animated_gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(face_like()), Image.fromarray(255 - face_like())]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_awkward_but_valid_images_are_accepted(name: str) -> None:
    rgb = load_image(ACCEPTED[name]())
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[:2] == (96, 80)


def test_large_photo_is_downscaled_while_decoding() -> None:
    big = np.zeros((3000, 4500, 3), np.uint8)
    big[1000:2000, 1500:3000] = 200
    rgb = load_image(encode(big, "JPEG", quality=80), max_work_pixels=2_000_000)
    assert rgb.shape[0] * rgb.shape[1] <= 2_000_000
    assert abs(rgb.shape[1] / rgb.shape[0] - 1.5) < 0.01  # aspect kept


# ---------------------------------------------------------------- YAML specs

def laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join([*lines, "defence: pixelate", "dataset: olivetti"]) + "\n"


BAD_YAML: dict[str, tuple[bytes, str]] = {
    "billion laughs": (laughs().encode(), "aliases"),
    "python object tag": (b'defence: !!python/object:os.system "echo hi"\n', "tags"),
    "python name tag": (b"defence: !!python/name:os.system\n", "tags"),
    "binary tag": (b"defence: !!binary aGVsbG8=\n", "tags"),
    "custom tag": (b"defence: !mine pixelate\n", "tags"),
    "a list": (b"- defence\n- pixelate\n", "mapping"),
    "a scalar": (b"pixelate\n", "mapping"),
    "binary file": (bytes(range(256)) * 8, "UTF-8"),
    "NUL bytes": (b"defence: pixelate\n\0\0\0", "NUL"),
    "bad syntax": (b"defence: [pixelate\n  attacks: {\n", "line 2"),
    "deep nesting": (b"a: " + b"[" * 100 + b"]" * 100 + b"\n", "deeper"),
    "too big": (b"# " + b"x" * (specfile.MAX_SPEC_BYTES + 10) + b"\n", "KiB"),
    "non-name keys": (b"1: a\n2: b\n", "names"),
}


@pytest.mark.parametrize("name", list(BAD_YAML))
def test_bad_yaml_specs_are_spec_errors(name: str, tmp_path: Path) -> None:
    data, words = BAD_YAML[name]
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    with pytest.raises(SpecError, match=words) as info:
        specfile.load(path)
    one_line_user_error(info.value)


def test_example_spec_is_accepted() -> None:
    spec = specfile.load(ROOT / "assets" / "example_audit.yaml")
    assert spec["defence"] == "pixelate" and spec["attacks"][0]["name"] == "identity"


def test_spec_values_are_bounded() -> None:
    from facepriv_core.audit import AuditSpec
    from facepriv_core.validation import validate

    with pytest.raises(InvalidParamsError, match="seed") as info:
        validate(AuditSpec, {"defence": "none", "dataset": "olivetti",
                             "seed": 99999999999999999999999}, "audit spec")
    one_line_user_error(info.value)
    assert "Valid parameters:" in str(info.value) and "batch_size" in str(info.value)


# ---------------------------------------------------------------- zips

def zip_bytes(members: dict[str, bytes], **kw: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, **kw) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def good_members(n: int = 2) -> dict[str, bytes]:
    return {f"faces/{p}/{k}.png": encode(face_like(), "PNG") for p in ("ann", "ben")
            for k in range(n)}


def gib_member_zip(path: Path) -> Path:
    """A ~1 MB zip whose one member inflates to 1 GiB (zeros)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z, \
            z.open("person/big.jpg", "w", force_zip64=True) as f:
        chunk = b"\0" * 2**20
        for _ in range(1024):
            f.write(chunk)
    return path


def lying_member_zip() -> bytes:
    """A member whose headers declare 1000 bytes while its data inflates to 4 MiB."""
    data = bytearray(zip_bytes({"person/liar.png": b"\0" * (4 * 2**20)}))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    struct.pack_into("<I", data, info.header_offset + 22, 1000)  # local header
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)  # central directory
    return bytes(data)


@pytest.fixture()
def tiny_caps(monkeypatch: pytest.MonkeyPatch) -> limits.Limits:
    caps = limits.Limits(hosted=False, image_bytes=2**20, max_pixels=1_000_000,
                         work_pixels=1_000_000, zip_members=20, zip_member_bytes=64 * 1024,
                         zip_total_bytes=100 * 1024, session_jobs=2, server_paths=True)
    monkeypatch.setattr(limits, "current", lambda: caps)
    return caps


def test_zip_good_is_accepted_and_junk_ignored() -> None:
    members = {**good_members(), "__MACOSX/faces/ann/._0.png": b"junk",
               "faces/ann/.hidden.png": b"junk", "faces/readme.txt": b"text"}
    ds = datasets.load_zip(zip_bytes(members), aligned=True)
    assert ds.identity_names == ["ann", "ben"] and len(ds) == 4
    assert ds.image(0).shape == (96, 80, 3)


ZIP_REFUSED: dict[str, tuple[Callable[[], bytes], str]] = {
    "not a zip": (lambda: b"plain bytes", "not a zip"),
    "truncated zip": (lambda: zip_bytes(good_members())[:200], "not a zip"),
    "too many members": (lambda: zip_bytes({f"p/{k}.png": b"x" for k in range(25)}),
                         "25 entries"),
    "member declared too big": (lambda: zip_bytes({"p/big.png": b"\0" * 70_000}),
                                "per photo"),
    "total too big": (lambda: zip_bytes({f"p/{k}.png": b"\0" * 60_000 for k in range(3)}),
                      "add up to"),
    "nested archive": (lambda: zip_bytes({"p/inner.zip": zip_bytes(good_members()),
                                          **good_members()}), "other archives"),
    "no images": (lambda: zip_bytes({"readme.txt": b"hello"}), "no images"),
}


@pytest.mark.parametrize("name", list(ZIP_REFUSED))
def test_hostile_zips_are_refused_before_reading(name: str, tiny_caps: limits.Limits) -> None:
    make, words = ZIP_REFUSED[name]
    with pytest.raises(datasets.DatasetError, match=words) as info:
        datasets.load_zip(make())
    one_line_user_error(info.value)


def test_zip_encrypted_member_is_refused() -> None:
    data = bytearray(zip_bytes(good_members(1)))
    central = data.find(b"PK\x01\x02")
    flags = struct.unpack_from("<H", data, central + 8)[0]
    struct.pack_into("<H", data, central + 8, flags | 0x1)
    with pytest.raises(datasets.DatasetError, match="encrypted"):
        datasets.load_zip(bytes(data))


def test_zip_member_lying_about_its_size_stops_at_the_cap(tiny_caps: limits.Limits) -> None:
    ds = datasets.load_zip(lying_member_zip())
    with pytest.raises(InputError, match=r"liar\.png") as info:
        ds.image(0)
    one_line_user_error(info.value)


def test_zip_corrupt_member_is_skipped_and_counted() -> None:
    members = good_members()
    data = bytearray(zip_bytes(members, ))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("faces/ann/0.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 40] ^= 0xFF  # inside the deflated data: CRC or inflate fails
    ds = datasets.load_zip(bytes(data), aligned=True)
    aligned = datasets.align_dataset(ds)
    assert len(aligned.indices) == 3 and list(aligned.failures) == ["faces/ann/0.png"]
    assert "damaged" in aligned.failures["faces/ann/0.png"] or \
        "not an image" in aligned.failures["faces/ann/0.png"].lower()


def _bomb_rss_mb(setup: str, action: str, timeout: float = 60) -> tuple[int, str]:
    """Run `setup` (imports) then `action` in a fresh interpreter: (the growth of its peak RSS
    during `action` in MB, its stdout). Imports (torch and all) are not the bomb's cost."""
    rss = "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024"
    code = (f"import resource\n{setup}\nbase = {rss}\n{action}\n"
            f"print('RSS', {rss} - base)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split("RSS")[-1]), proc.stdout


def test_gib_member_zip_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    path = gib_member_zip(tmp_path / "gib.zip")
    assert path.stat().st_size < 8 * 2**20
    rss, out = _bomb_rss_mb(
        f"from facepriv_core import datasets\ndata = open({str(path)!r}, 'rb').read()",
        "try:\n    datasets.load_zip(data)\nexcept datasets.DatasetError as exc:\n"
        "    print('refused:', exc)")
    assert "refused:" in out and "1024 MiB" in out
    assert rss < BOMB_RSS_MB, f"peak RSS {rss} MB"


def test_billion_laughs_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs())
    rss, out = _bomb_rss_mb(
        "from facepriv_core import specfile",
        f"try:\n    specfile.load({str(path)!r})\nexcept specfile.SpecError as exc:\n"
        "    print('refused:', exc)")
    assert "refused:" in out and "aliases" in out
    assert rss < BOMB_RSS_MB, f"peak RSS {rss} MB"


def test_pixel_bomb_is_refused_with_bounded_memory() -> None:
    rss, out = _bomb_rss_mb(
        "import tests.test_hostile_inputs as t\nfrom facepriv_core import faces\n"
        "bomb = t.png_header_only(60000, 60000)",
        "try:\n    faces.load_image(bomb)\n"
        "except faces.ImageTooLargeError as exc:\n    print('refused:', exc)")
    assert "refused:" in out
    assert rss < BOMB_RSS_MB, f"peak RSS {rss} MB"


# ---------------------------------------------------------------- folders

def test_folder_skips_and_counts_fifo_dangling_link_and_subfolder(tmp_path: Path) -> None:
    person = tmp_path / "ann"
    person.mkdir()
    (person / "good.png").write_bytes(encode(face_like(), "PNG"))
    os.mkfifo(person / "fifo.jpg")
    (person / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (person / "folder.jpg").mkdir()
    (tmp_path / "bob").symlink_to(tmp_path / "no-such-person")
    ds = datasets.load_folder(tmp_path, aligned=True)
    assert ds.keys == ["ann/good.png"]
    assert ds.skipped == {"ann/fifo.jpg": "not a regular file",
                          "ann/gone.jpg": "dangling link",
                          "ann/folder.jpg": "not a regular file"}
    assert ds.image(0).shape == (96, 80, 3)


def test_folder_of_only_fifos_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "ann").mkdir()
    os.mkfifo(tmp_path / "ann" / "x.jpg")
    with pytest.raises(datasets.DatasetError, match="1 entries skipped") as info:
        datasets.load("folder:" + str(tmp_path))
    one_line_user_error(info.value)


@pytest.mark.parametrize("spec", ["folder:/no/such/dir", "zip:/no/such.zip", "folder:",
                                  "zip:", "nonsense:x"])
def test_bad_dataset_specs(spec: str) -> None:
    with pytest.raises(datasets.DatasetError) as info:
        datasets.load(spec)
    one_line_user_error(info.value)


# ---------------------------------------------------------------- command lines

@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    (d / "face.jpg").write_bytes(encode(face_like(150, 150), "JPEG"))
    (d / "face.png").write_bytes(encode(face_like(150, 150), "PNG"))
    for name, (data, _) in BAD_YAML.items():
        (d / f"{name.replace(' ', '_')}.yaml").write_bytes(data)
    (d / "batch_zero.yaml").write_text(f"defence: none\ndataset: '{OLIVETTI}'\n"
                                       "batch_size: 0\n")
    (d / "unknown_key.yaml").write_text("defence: none\ndataset: olivetti\nbogus: 1\n")
    (d / "params_list.yaml").write_text("defence: none\ndataset: olivetti\n"
                                        "defence_params: [1, 2]\n")
    gib_member_zip(d / "gib.zip")
    (d / "fifo" / "ann").mkdir(parents=True)
    os.mkfifo(d / "fifo" / "ann" / "x.jpg")
    return d


OLIVETTI = f"olivetti:{ROOT.parent / 'shared' / 'data' / 'olivetti' / 'olivettifaces.mat'}"


def cli_cases(d: Path) -> dict[str, list[str]]:
    img = ["--image", str(d / "face.jpg"), "--aligned"]
    oli = ["--dataset", OLIVETTI, "--limit", "2"]
    return {
        "readme example, image missing": ["protect", "--defence", "pixelate", "--set",
                                          "block=16", "--image", "face-not-here.jpg",
                                          "--out", str(d / "out"), "--json"],
        "directory as image": ["protect", "--defence", "pixelate", "--image", str(d)],
        "fifo as image": ["protect", "--defence", "pixelate", "--image",
                          str(d / "fifo" / "ann" / "x.jpg")],
        "device bogus": ["protect", "--defence", "pixelate", *img, "--device", "bogus"],
        "device cuda:99": ["protect", "--defence", "pixelate", *img, "--device", "cuda:99"],
        "key_seed overflow": ["protect", "--defence", "xnn", *img, "--set",
                              "key_seed=99999999999999999999999"],
        "shuffle_seed": ["protect", "--defence", "ppfr_fd", *img, "--set", "shuffle_seed=1"],
        "seed overflow": ["protect", "--defence", "pixelate", *img, "--seed",
                          "99999999999999999999999"],
        "seed negative": ["protect", "--defence", "pixelate", *img, "--seed", "-1"],
        "seed not a number": ["protect", "--defence", "pixelate", *img, "--seed", "abc"],
        "adapter_path /etc/passwd": ["protect", "--defence", "ppfr_fd", *img, "--set",
                                     "adapter_path=/etc/passwd"],
        "adapter_path directory": ["protect", "--defence", "ppfr_fd", *img, "--set",
                                   f"adapter_path={d}"],
        "jpeg as server_path": ["protect", "--defence", "facemix", *img, "--set",
                                "server=trained", "--set", f"server_path={d / 'face.jpg'}"],
        "server_path without trained": ["protect", "--defence", "facemix", *img, "--set",
                                        f"server_path={d / 'face.jpg'}"],
        "set without =": ["protect", "--defence", "pixelate", *img, "--set", "block"],
        "set wrong type": ["protect", "--defence", "pixelate", *img, "--set", "block=abc"],
        "set out of bounds": ["protect", "--defence", "pixelate", *img, "--set", "block=-3"],
        "unknown defence": ["protect", "--defence", "rot13", *img],
        "missing --defence": ["protect", *img],
        "unknown verb": ["explode"],
        "attack does not apply": ["audit", "--defence", "xnn", "--attack", "attribute", *oli],
        "unknown attack": ["audit", "--defence", "none", "--attack", "telepathy", *oli],
        "attack-set malformed": ["audit", "--defence", "none", "--attack-set", "identity",
                                 *oli],
        "attack param unknown": ["audit", "--defence", "none", "--attack", "identity",
                                 "--attack-set", "identity.bogus=1", *oli],
        "defence param unknown in audit": ["audit", "--defence", "none", "--set", "x=1",
                                           *oli],
        "batch_size zero in spec": ["audit", "--spec", str(d / "batch_zero.yaml")],
        "limit zero": ["audit", "--defence", "none", "--limit", "0", "--dataset", "olivetti"],
        "limit huge": ["audit", "--defence", "none", "--limit", "10" * 15, "--dataset",
                       "olivetti"],
        "spec missing": ["audit", "--spec", str(d / "nope.yaml")],
        "spec is a directory": ["audit", "--spec", str(d)],
        "spec unknown key": ["audit", "--spec", str(d / "unknown_key.yaml")],
        "spec params a list": ["audit", "--spec", str(d / "params_list.yaml"), "--set", "a=1"],
        "gib zip dataset": ["audit", "--defence", "none", "--dataset", f"zip:{d / 'gib.zip'}"],
        "fifo folder dataset": ["audit", "--defence", "none", "--dataset",
                                f"folder:{d / 'fifo'}"],
        "sweep without values": ["sweep", "--defence", "pixelate", "--param", "block",
                                 "--values", ",", *oli],
        **{f"spec {name}": ["audit", "--spec", str(d / f"{name.replace(' ', '_')}.yaml")]
           for name in BAD_YAML},
    }


CASE_NAMES = list(cli_cases(Path("/x")))
#: What the one line must say, for the cases where a wrong reason could also exit 2.
EXPECTED = {
    "readme example, image missing": "no such file",
    "directory as image": "directory",
    "fifo as image": "not a regular file",
    "device bogus": "unknown device",
    "device cuda:99": "cuda",
    "key_seed overflow": "key_seed: not a parameter",
    "shuffle_seed": "shuffle_seed: not a parameter",
    "seed overflow": "out of range",
    "adapter_path /etc/passwd": "not a PPFR-FD service checkpoint",
    "adapter_path directory": "not a regular file",
    "jpeg as server_path": "not a FaceMix server checkpoint",
    "server_path without trained": "server_path is needed",
    "set wrong type": "block",
    "unknown defence": "rot13",
    "attack does not apply": "does not apply",
    "unknown attack": "telepathy",
    "attack-set malformed": "NAME.key=value",
    "attack param unknown": "bogus: not a parameter",
    "defence param unknown in audit": "x: not a parameter",
    "batch_size zero in spec": "batch_size",
    "limit zero": "out of range",
    "spec unknown key": "bogus: not a parameter",
    "spec params a list": "mapping",
    "gib zip dataset": "1024 MiB",
    "fifo folder dataset": "skipped",
    "sweep without values": "--values",
    "spec billion laughs": "aliases",
    "spec python object tag": "tags",
}
NEEDS_OLIVETTI = {"attack does not apply", "unknown attack", "attack-set malformed",
                  "attack param unknown", "defence param unknown in audit",
                  "batch_size zero in spec", "sweep without values"}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_command_lines_exit_2_with_one_line(name: str, corpus: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from facepriv_core.cli import main

    if name in NEEDS_OLIVETTI and not Path(OLIVETTI.partition(":")[2]).is_file():
        pytest.skip("Olivetti faces not found")
    if name == "device cuda:99":
        import torch

        if torch.cuda.device_count() > 99:
            pytest.skip("this machine has 100 GPUs")
    rc = main(cli_cases(corpus)[name])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert EXPECTED.get(name, "") in err, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "unexpected failure" not in err
    assert "errors.pydantic.dev" not in err and "For further information" not in err


def test_param_errors_list_the_valid_parameters(corpus: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from facepriv_core.cli import main

    main(cli_cases(corpus)["key_seed overflow"])
    err = capsys.readouterr().err
    assert "key_seed: not a parameter" in err
    assert "cond_max (float, >= 1.0 and <= 1000000.0, default 10.0)" in err


def test_a_bug_is_one_line_exit_1_and_debug_shows_the_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A KeyError from a programming error is not dressed up as a user error."""
    import argparse

    from facepriv_core import cli

    def broken(args: argparse.Namespace) -> int:
        raise KeyError("a programming error")

    for debug in (False, True):
        parsed = argparse.Namespace(func=broken, debug=debug)
        monkeypatch.setattr(cli, "build_parser", lambda p=parsed: _Fixed(p))
        if debug:
            with pytest.raises(KeyError):
                cli.main([])
        else:
            assert cli.main([]) == 1
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "run with --debug for the traceback" in err
            assert "facepriv: error:" not in err


class _Fixed:
    def __init__(self, args: object) -> None:
        self._args = args

    def parse_args(self, argv: object) -> object:
        return self._args


def test_readme_example_and_laughs_end_to_end(corpus: Path) -> None:
    """As a user runs them: a fresh process, exit 2, one line on stderr, no traceback."""
    for args in (cli_cases(corpus)["readme example, image missing"],
                 cli_cases(corpus)["spec billion laughs"],
                 cli_cases(corpus)["gib zip dataset"]):
        proc = subprocess.run([sys.executable, "-m", "facepriv_core", *args], cwd=corpus,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
