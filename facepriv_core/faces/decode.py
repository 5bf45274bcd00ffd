"""Safe image decoding: untrusted bytes in, uint8 (H, W, 3) RGB out, or a typed InputError.

Why each guard exists:
- Only common photo formats are opened (no EPS/PDF, which hand data to external programs).
- Size caps are checked from the header, before any pixel is decoded, so a tiny file that
  claims 30000x30000 pixels (a decompression bomb) fails at once without allocating.
- Truncated files raise instead of decoding to grey: PIL's LOAD_TRUNCATED_IMAGES stays False.
- Alpha is composited on white, because faces are the subject and a white background is what
  an upload preview shows; black would darken semi-transparent edges.
The image is never logged or written anywhere.
"""

from __future__ import annotations

import io
import os
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
MIN_SIDE = 32
MAX_PIXELS_ENV = "FACEPRIV_MAX_PIXELS"

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
    """The pixel cap: FACEPRIV_MAX_PIXELS when set, so deployments can tune it without code."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
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
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """Decode an untrusted image to uint8 (H, W, 3) RGB, upright per its EXIF orientation.

    `source` is bytes, a path, or a binary file object (read from its current position).
    Animated images give their first frame. Raises EmptyInputError, NotAnImageError,
    ImageTooLargeError or ImageTooSmallError with a message meant for the user.
    """
    cap = max_pixels_from_env() if max_pixels is None else max_pixels
    data = _read_bytes(source, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                _check_size(im.size, cap, min_side)
                im.seek(0)
                return _to_rgb(ImageOps.exif_transpose(im))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"The image has too many pixels to open safely ({exc}). "
            "Downscale it (for example to 4000 pixels on the long side) and try again."
        ) from None
    except (Image.UnidentifiedImageError, *_DECODE_ERRORS):
        raise NotAnImageError(_NOT_AN_IMAGE) from None


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    """All of the input, refusing more than `max_bytes` without reading past the cap."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            data = f.read(max_bytes + 1)
    else:
        data = source.read(max_bytes + 1)
    if not data:
        raise EmptyInputError("The file is empty (0 bytes). Choose or upload the image again.")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The file is larger than the {max_bytes / 1e6:.0f} MB limit. "
            "Save it as a JPEG or downscale it, and try again."
        )
    return data


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
    return np.asarray(im.convert("RGB"))


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit greyscale spans 0..65535 and float 0..1; other ranges are stretched to 0..255."""
    x = arr.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535):
        x = x / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        x = x * 255.0
    else:
        x = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
