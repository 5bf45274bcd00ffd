"""Safe image decoding: untrusted bytes in, uint8 (H, W, 3) RGB out, or a typed InputError.

Why each guard exists:
- Only common photo formats are opened (no EPS/PDF, which hand data to external programs).
- Size caps are checked from the header, before any pixel is decoded, so a tiny file that
  claims 30000x30000 pixels (a decompression bomb) fails at once without allocating.
- Truncated files raise instead of decoding to grey: PIL's LOAD_TRUNCATED_IMAGES stays False.
- Alpha is composited on white, because faces are the subject and a white background is what
  an upload preview shows; black would darken semi-transparent edges.
- Photos larger than the working size (`max_work_pixels`) are downscaled while decoding
  (JPEG's DCT scaling, then a uint8 resize), before any full-size copy: detection and
  alignment then cost the same for a 36-megapixel photo as for a 12-megapixel one.
- Only regular files are opened, without blocking (a FIFO named x.jpg fails at once).
- Float images (TIFF mode F) with NaN or infinite pixels are scaled from their finite pixels.
- Pillow's own error texts are not shown: they are written for developers.
The image is never logged or written anywhere.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from facepriv_core.faces.errors import (
    EmptyInputError,
    ImageTooLargeError,
    ImageTooSmallError,
    InputError,
    NotAnImageError,
)

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

# Formats Pillow may try; multi-picture JPEGs (MPO, from phones) open through "JPEG".
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Decoded images above this many pixels are downscaled (faces stay far above detector size).
DEFAULT_WORK_PIXELS = 12_000_000
MIN_SIDE = 32
ORIENTATION_TAG = 0x0112
#: Pillow modes resized as they are (others are converted to RGB first).
RESIZABLE_MODES = ("RGB", "RGBA", "L", "LA")
MAX_PIXELS_ENV = "FACEPRIV_MAX_PIXELS"


def mib(n: int) -> str:
    """A byte count in the unit every size message uses (MiB, as Streamlit's upload cap)."""
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"

_NOT_AN_IMAGE = (
    "The file is not an image we can read (JPEG, PNG, WebP, GIF, BMP, TIFF). It may be "
    "another kind of file, or damaged or cut short during upload or download: "
    "open it in an image viewer, re-save it as JPEG or PNG, and try again."
)
# What Pillow raises for corrupt or truncated data, including its plugins' parsing errors.
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
)


def max_pixels_from_env() -> int:
    """The pixel cap: FACEPRIV_MAX_PIXELS when set, so deployments can tune it without code;
    else the hosted or local default (facepriv_core.limits)."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        from facepriv_core.limits import current

        return current().max_pixels
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV} must be positive, got {value}")
    return value


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    min_side: int = MIN_SIDE,
    max_work_pixels: int | None = None,
) -> np.ndarray:
    """Decode an untrusted image to uint8 (H, W, 3) RGB, upright per its EXIF orientation.

    `source` is bytes, a path, or a binary file object (read from its current position).
    Animated images give their first frame. Images over `max_work_pixels` come back
    downscaled to it. Raises EmptyInputError, NotAnImageError, ImageTooLargeError or
    ImageTooSmallError with a message meant for the user.
    """
    from facepriv_core.limits import current

    limits = current()
    cap = max_pixels_from_env() if max_pixels is None else max_pixels
    work = limits.work_pixels if max_work_pixels is None else max_work_pixels
    data = _read_bytes(source, limits.image_bytes if max_bytes is None else max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
                _check_size(opened.size, cap, min_side)
                opened.seek(0)
                if opened.format == "JPEG" and opened.size[0] * opened.size[1] > work:
                    scale = (work / (opened.size[0] * opened.size[1])) ** 0.5
                    opened.draft("RGB", (int(opened.size[0] * scale),
                                         int(opened.size[1] * scale)))
                opened.load()
                im: Image.Image = opened
                if opened.getexif().get(ORIENTATION_TAG, 1) != 1:
                    im = ImageOps.exif_transpose(opened)
                if im.mode in RESIZABLE_MODES:
                    im = _downscale_pil(im, work)  # before any full-size array copy
                return _downscale(_to_rgb(im), work)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"The image has too many pixels to open safely (the limit is {cap / 1e6:.1f} "
            "megapixels). Downscale it (for example to 4000 pixels on the long side) and try "
            "again."
        ) from None
    except MemoryError:
        raise ImageTooLargeError(
            "The image is too large to decode on this machine. Downscale it and try again."
        ) from None
    except (Image.UnidentifiedImageError, *_DECODE_ERRORS):
        raise NotAnImageError(_NOT_AN_IMAGE) from None


def _too_big(max_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The file is larger than the {mib(max_bytes)} limit. "
        "Save it as a JPEG or downscale it, and try again."
    )


def _read_path(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """A regular file's bytes: opened without blocking (a FIFO or device never hangs us),
    checked to be a regular file, read up to the cap."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"No file at '{name}'. Check the path and try again.") from None
    except PermissionError:
        raise InputError(f"'{name}' cannot be read (permission denied).") from None
    except OSError as exc:
        raise InputError(f"'{name}' cannot be opened ({exc.strerror}).") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"'{name}' is a folder, not an image file.")
        raise NotAnImageError(f"'{name}' is not a regular file (a pipe, socket or device); "
                              "give an image file.")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise _too_big(max_bytes)
        try:
            return f.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"'{name}' cannot be read ({exc.strerror}).") from None


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    """All of the input, refusing more than `max_bytes` without reading past the cap."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) > max_bytes:
            raise _too_big(max_bytes)
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        data = _read_path(source, max_bytes)
    else:
        data = source.read(max_bytes + 1)
    if not data:
        raise EmptyInputError("The file is empty (0 bytes). Choose or upload the image again.")
    if len(data) > max_bytes:
        raise _too_big(max_bytes)
    return data


def _target_size(w: int, h: int, work_pixels: int) -> tuple[int, int]:
    scale = (work_pixels / (w * h)) ** 0.5
    return max(1, int(w * scale)), max(1, int(h * scale))


def _downscale_pil(im: Image.Image, work_pixels: int) -> Image.Image:
    """A Pillow image shrunk (antialiased) to at most `work_pixels`; else as is."""
    w, h = im.size
    if w * h <= work_pixels:
        return im
    return im.resize(_target_size(w, h, work_pixels), Image.Resampling.LANCZOS,
                     reducing_gap=3.0)


def _downscale(rgb: np.ndarray, work_pixels: int) -> np.ndarray:
    """uint8 RGB shrunk (antialiased) to at most `work_pixels`, aspect kept; else as is."""
    h, w = rgb.shape[:2]
    if h * w <= work_pixels:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(_target_size(w, h, work_pixels),
                                                  Image.Resampling.LANCZOS, reducing_gap=3.0))


def _check_size(size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    """Refuse from the header's dimensions alone, before decoding any pixel."""
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"The image is {w}x{h} pixels ({w * h / 1e6:.1f} megapixels); the limit is "
            f"{max_pixels / 1e6:.1f} megapixels. Downscale it (for example to 4000 pixels on "
            "the long side) and try again."
        )
    if min(w, h) < min_side:
        raise ImageTooSmallError(
            f"The image is {w}x{h} pixels; faces need at least {min_side} pixels on each side. "
            "Use a larger photo or a crop with more of the face."
        )


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB: alpha on white, high bit depths scaled (not clipped)."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _scale_to_uint8(np.asarray(im), im.mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if "A" in im.mode or "a" in im.mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit greyscale spans 0..65535 and float 0..1; other ranges are stretched to 0..255.
    NaN and infinite pixels (float TIFFs) become black; the range comes from the others."""
    x = arr.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        if not finite.any():
            raise NotAnImageError("The image holds no finite pixel values (all NaN or "
                                  "infinite). Export it again as an 8-bit JPEG or PNG.")
        x = np.where(finite, x, np.float32(np.nan))
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        x = np.nan_to_num(x, nan=lo)
    else:
        lo, hi = float(x.min()), float(x.max())
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535):
        x = x / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        x = x * 255.0
    else:
        x = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
