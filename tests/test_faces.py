"""The safe face pipeline: awkward and malicious inputs, detection and alignment geometry.

All inputs are made in memory here; faces come from skimage's astronaut (public domain),
the SFHQ sample and Olivetti via conftest's fixtures.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image, ImageFile

from facepriv_core.faces import (
    EmptyInputError,
    FaceImage,
    ImageTooLargeError,
    ImageTooSmallError,
    InputError,
    NoFaceFoundError,
    NotAnImageError,
    align_template,
    detect,
    detect_and_align,
    from_aligned,
    load_face,
    load_image,
)
from facepriv_core.faces.align import dlib_chip_to_template, template_transform
from facepriv_core.faces.decode import MAX_PIXELS_ENV
from facepriv_core.weight_files import FRM, SHAPE5_DAT, package_file

ARCFACE_EYES = np.array([(38.2946, 51.6963), (73.5318, 51.5014)])  # image-left, image-right


def encode(arr: np.ndarray | Image.Image, fmt: str, **params: object) -> bytes:
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height RGB pixels but holds none: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def grey(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).convert("L"))


def animated(fmt: str, first: np.ndarray, **params: object) -> bytes:
    """Two frames: `first`, then flat red."""
    frames = [Image.fromarray(first), Image.new("RGB", first.shape[1::-1], (255, 0, 0))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)


def exif_rotated(img: np.ndarray) -> bytes:
    """The astronaut stored as a sideways camera would, with Orientation 6 to put her upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(np.ascontiguousarray(np.rot90(img, k=1)), "JPEG", quality=95, exif=exif)


def rgba_half_transparent(img: np.ndarray) -> bytes:
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:, :200] = 0
    return encode(np.dstack([img, alpha]), "PNG")


def expect_close(ref: Callable[[np.ndarray], np.ndarray], tol: float
                 ) -> Callable[[np.ndarray, np.ndarray], None]:
    def check(out: np.ndarray, img: np.ndarray) -> None:
        want = ref(img)
        assert out.shape == want.shape
        assert mean_abs(out, want) <= tol

    return check


def grey3(img: np.ndarray) -> np.ndarray:
    return np.repeat(grey(img)[:, :, None], 3, axis=2)


def check_rgba(out: np.ndarray, img: np.ndarray) -> None:
    assert (out[:, :200] == 255).all()  # transparent -> white
    assert np.array_equal(out[:, 200:], img[:, 200:])


def check_16bit(out: np.ndarray, img: np.ndarray) -> None:
    assert np.array_equal(out[..., 0], grey(img))  # scaled by 257, not clipped to 255
    assert (out[..., 0] == out[..., 2]).all()


def check_palette_transparency(out: np.ndarray, img: np.ndarray) -> None:
    assert (out[:64] == 255).all()
    assert mean_abs(out[64:], img[64:]) < 12


def palette_with_transparency(img: np.ndarray) -> bytes:
    pal = Image.fromarray(img).quantize(255)
    arr = np.asarray(pal).copy()
    arr[:64] = 255
    out = Image.fromarray(arr, "P")
    colours = pal.getpalette()
    out.putpalette(colours + [0] * (768 - len(colours)))  # index 255: black unless transparent
    return encode(out, "PNG", transparency=255)


def float_tiff(img: np.ndarray) -> bytes:
    return encode(Image.fromarray(grey(img).astype(np.float32) / 255.0, "F"), "TIFF")


def one_bit(img: np.ndarray) -> bytes:
    return encode(Image.fromarray(grey(img) > 128), "BMP")


def check_one_bit(out: np.ndarray, img: np.ndarray) -> None:
    assert np.array_equal(out[..., 1], np.where(grey(img) > 128, 255, 0))


def check_la(out: np.ndarray, img: np.ndarray) -> None:
    assert (out[:, :100] == 255).all()
    assert np.array_equal(out[:, 100:, 0], grey(img)[:, 100:])


def la_png(img: np.ndarray) -> bytes:
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:, :100] = 0
    return encode(Image.fromarray(np.dstack([grey(img), alpha]), "LA"), "PNG")


Case = tuple[Callable[[np.ndarray], bytes], type[InputError] | Callable[..., None]]

CASES: dict[str, Case] = {
    "zero-bytes": (lambda img: b"", EmptyInputError),
    "truncated-jpeg": (lambda img: encode(img, "JPEG")[:20_000], NotAnImageError),
    "jpeg-missing-last-bytes": (lambda img: encode(img, "JPEG")[:-200], NotAnImageError),
    "text-as-png": (lambda img: b"name,age\nAda,36\n" * 20, NotAnImageError),
    "truncated-png": (lambda img: encode(img, "PNG")[:50_000], NotAnImageError),
    "png-signature-only": (lambda img: b"\x89PNG\r\n\x1a\n", NotAnImageError),
    "pdf": (lambda img: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n", NotAnImageError),
    "tiny-16px": (lambda img: encode(img[:16, :16], "PNG"), ImageTooSmallError),
    "rgb-jpeg": (lambda img: encode(img, "JPEG", quality=95), expect_close(lambda x: x, 3)),
    "cmyk-jpeg": (lambda img: encode(Image.fromarray(img).convert("CMYK"), "JPEG", quality=95),
                  expect_close(lambda x: x, 4)),
    "16bit-grey-png": (lambda img: encode(grey(img).astype(np.uint16) * 257, "PNG"),
                       check_16bit),
    "float-tiff": (float_tiff, expect_close(grey3, 0.01)),
    "rgba-transparent-png": (rgba_half_transparent, check_rgba),
    "la-png": (la_png, check_la),
    "greyscale-png": (lambda img: encode(grey(img), "PNG"), expect_close(grey3, 0)),
    "one-bit-bmp": (one_bit, check_one_bit),
    "palette-png": (lambda img: encode(Image.fromarray(img).quantize(256), "PNG"),
                    expect_close(lambda x: x, 12)),
    "palette-png-transparency": (palette_with_transparency, check_palette_transparency),
    "webp": (lambda img: encode(img, "WEBP", quality=95), expect_close(lambda x: x, 4)),
    "exif-rotated-jpeg": (exif_rotated, expect_close(lambda x: x, 3)),
    "animated-gif": (lambda img: animated("GIF", img, duration=100, loop=0),
                     expect_close(lambda x: x, 12)),
    "animated-webp": (lambda img: animated("WEBP", img, lossless=True),
                      expect_close(lambda x: x, 0)),
    "apng": (lambda img: animated("PNG", img), expect_close(lambda x: x, 0)),
    "tiff": (lambda img: encode(img, "TIFF"), expect_close(lambda x: x, 0)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_awkward_inputs(name: str, astronaut: np.ndarray) -> None:
    make, expected = CASES[name]
    data = make(astronaut)
    if isinstance(expected, type):
        with pytest.raises(expected) as info:
            load_image(data)
        assert len(str(info.value)) > 40  # a sentence the user can act on
        return
    out = load_image(data)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    expected(out, astronaut)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_first_frame_has_the_face(fmt: str, astronaut: np.ndarray) -> None:
    face = load_face(animated(fmt, astronaut))
    assert face.box is not None and 150 < face.box[0] < 200


def test_exif_rotation_keeps_face_detectable(astronaut: np.ndarray) -> None:
    face = load_face(exif_rotated(astronaut))
    assert face.box is not None
    assert np.allclose(face.box, (179, 83, 266, 170), atol=8)


@pytest.mark.parametrize(("size", "max_pixels"), [
    ((30000, 30000), None),  # over twice Pillow's own cap: DecompressionBombError
    ((9000, 9000), None),  # under Pillow's cap, over ours
    ((10000, 10000), 200_000_000),  # our cap raised past Pillow's: its warning is an error
])
def test_decompression_bomb_fails_fast(size: tuple[int, int], max_pixels: int | None) -> None:
    data = png_header_only(*size)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(data, max_pixels=max_pixels)
    assert time.perf_counter() - start < 0.5
    assert len(data) < 100


def test_pixel_cap_from_env(monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray) -> None:
    data = encode(astronaut, "PNG")
    monkeypatch.setenv(MAX_PIXELS_ENV, "100000")
    with pytest.raises(ImageTooLargeError, match=r"0\.1 megapixels"):
        load_image(data)
    assert load_image(data, max_pixels=300_000).shape == (512, 512, 3)


def test_byte_cap(astronaut: np.ndarray) -> None:
    with pytest.raises(ImageTooLargeError, match="10 KiB limit"):
        load_image(encode(astronaut, "PNG"), max_bytes=10 * 1024)
    with pytest.raises(ImageTooLargeError, match="1 MiB limit"):
        load_image(encode(astronaut, "PNG") * 3, max_bytes=2**20)


def test_paths_and_file_objects(tmp_path: Path, astronaut: np.ndarray) -> None:
    path = tmp_path / "face.png"
    path.write_bytes(encode(astronaut, "PNG"))
    assert np.array_equal(load_image(path), astronaut)
    assert np.array_equal(load_image(str(path)), astronaut)
    with open(path, "rb") as f:
        assert np.array_equal(load_image(f), astronaut)
    renamed = tmp_path / "notes.png"
    renamed.write_text("not a picture\n" * 10)
    with pytest.raises(NotAnImageError, match="not an image we can read"):
        load_image(renamed)


def test_truncated_images_stay_refused() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.fixture(scope="module")
def astronaut_face(astronaut: np.ndarray) -> FaceImage:
    return detect_and_align(astronaut)


@pytest.fixture(scope="module")
def shape5() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(package_file(FRM, SHAPE5_DAT)))


def test_astronaut_box(astronaut_face: FaceImage) -> None:
    left, top, right, bottom = astronaut_face.box
    assert 160 < left < 200 and 60 < top < 110 and 245 < right < 285 and 150 < bottom < 195
    lm = astronaut_face.landmarks
    assert ((lm[:, 0] > left) & (lm[:, 0] < right) & (lm[:, 1] > top) & (lm[:, 1] < bottom)).all()
    assert astronaut_face.others == ()
    assert "array" not in repr(astronaut_face) and len(repr(astronaut_face)) < 80


def test_chip150_is_dlibs_own(astronaut: np.ndarray, astronaut_face: FaceImage,
                              shape5: dlib.shape_predictor) -> None:
    rect = dlib.get_frontal_face_detector()(astronaut, 0)[0]
    want = dlib.get_face_chip(astronaut, shape5(astronaut, rect), size=150, padding=0.25)
    assert astronaut_face.chip150.shape == (150, 150, 3)
    assert np.array_equal(astronaut_face.chip150, want)


def test_chip112_eyes_on_template(astronaut: np.ndarray, astronaut_face: FaceImage,
                                  shape5: dlib.shape_predictor) -> None:
    """Landmarks found afresh on the 112 chip put the eyes where ArcFace's template does."""
    chip = astronaut_face.chip112
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    left, top, right, bottom = astronaut_face.box
    corners = template_transform(astronaut_face.landmarks)([(left, top), (right, bottom)])
    rect = dlib.rectangle(*(int(v) for v in np.rint(corners).ravel()))
    pts = np.array([(p.x, p.y) for p in shape5(chip, rect).parts()], dtype=float)
    eyes = np.array([pts[2:4].mean(axis=0), pts[0:2].mean(axis=0)])
    assert np.abs(eyes - ARCFACE_EYES).max() < 3.0


def test_two_faces_largest_used(astronaut: np.ndarray) -> None:
    canvas = np.full((770, 1300, 3), 255, np.uint8)
    canvas[100:612, :512] = astronaut
    canvas[:768, 530:1298] = np.asarray(Image.fromarray(astronaut).resize((768, 768)))
    face = detect_and_align(canvas)
    assert face.box is not None and face.box[0] > 530  # the big one, on the right
    assert len(face.others) == 1 and face.others[0][2] < 512


@pytest.mark.parametrize("image", ["coffee", "flat"])
def test_no_face(image: str) -> None:
    from skimage import data

    img = data.coffee() if image == "coffee" else np.full((300, 300, 3), 128, np.uint8)
    with pytest.raises(NoFaceFoundError, match="No face was found"):
        load_face(encode(img, "PNG"))


def test_small_face_auto_upsample(astronaut: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(astronaut).resize((200, 200)))
    assert detect(small, auto_upsample=False) == []
    (found,) = detect(small)
    assert np.allclose(found.box, np.array((179, 83, 266, 170)) * 200 / 512, atol=6)


def test_large_image_detected_downscaled(astronaut: np.ndarray, astronaut_face: FaceImage
                                         ) -> None:
    big = np.asarray(Image.fromarray(astronaut).resize((2560, 2560), Image.Resampling.BICUBIC))
    (found,) = detect(big)
    assert np.allclose(found.box, np.array(astronaut_face.box) * 5, atol=40)
    assert np.allclose(found.landmarks5, astronaut_face.landmarks * 5, atol=25)


def test_mmod_finds_astronaut(astronaut: np.ndarray, astronaut_face: FaceImage) -> None:
    (found,) = detect(astronaut, method="mmod")
    assert np.allclose(found.box, astronaut_face.box, atol=20)
    assert np.allclose(found.landmarks5, astronaut_face.landmarks, atol=4)


def test_detect_is_thread_safe(astronaut: np.ndarray) -> None:
    with ThreadPoolExecutor(4) as pool:
        boxes = list(pool.map(lambda _: detect(astronaut)[0].box, range(8)))
    assert len(set(boxes)) == 1


def test_from_aligned_olivetti_like(astronaut_face: FaceImage) -> None:
    """A 64x64 greyscale crop framed like dlib's chip gives chips matching the detected ones."""
    crop = np.asarray(Image.fromarray(astronaut_face.chip150).convert("L").resize((64, 64)))
    face = from_aligned(crop)
    assert face.chip150.shape == (150, 150, 3) and face.chip112.shape == (112, 112, 3)
    assert face.chip150.dtype == np.uint8 and face.landmarks is None and face.box is None
    assert (face.chip112[..., 0] == face.chip112[..., 2]).all()
    top = int(np.ceil(dlib_chip_to_template().translation[1]))
    assert (face.chip112[: top - 1] == 0).all()  # above the crop: black, as off-image areas
    want = grey(astronaut_face.chip112)
    assert mean_abs(face.chip112[top + 2:100, 20:92, 0], want[top + 2:100, 20:92]) < 12


def test_from_aligned_real_olivetti(olivetti_path: Path) -> None:
    from scipy.io import loadmat

    faces = loadmat(olivetti_path)["faces"].T.reshape(400, 64, 64).transpose(0, 2, 1)
    face = from_aligned(np.ascontiguousarray(faces[0]))
    assert face.chip150.shape == (150, 150, 3) and face.chip112.shape == (112, 112, 3)


def test_from_aligned_refuses_tiny() -> None:
    with pytest.raises(ImageTooSmallError):
        from_aligned(np.zeros((20, 20), np.uint8))


def test_load_face_aligned_flag(astronaut_face: FaceImage) -> None:
    face = load_face(encode(astronaut_face.chip150, "PNG"), aligned=True)
    assert np.array_equal(face.chip150, astronaut_face.chip150)


def test_sfhq_crops(sfhq_dir: Path, sfhq_rows: list[dict[str, str]]) -> None:
    for row in sfhq_rows[::140]:
        face = load_face(sfhq_dir / row["file"])
        assert face.box is not None
        assert face.chip150.shape == (150, 150, 3)


def test_template_alignment_accepts_dlib_shape(astronaut: np.ndarray, astronaut_face: FaceImage,
                                               shape5: dlib.shape_predictor) -> None:
    rect = dlib.rectangle(*astronaut_face.box)
    chip = align_template(astronaut, shape5(astronaut, rect))
    assert np.array_equal(chip, astronaut_face.chip112)
