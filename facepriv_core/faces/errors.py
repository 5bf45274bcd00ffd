"""Typed errors for everything a user can get wrong with an input image.

Each message says what went wrong and what to do, so the app and the CLI can show it as is.
"""

from facepriv_core.errors import FacePrivError


class InputError(FacePrivError, ValueError):
    """Base class: the input cannot be used; the message is meant for the user."""


class EmptyInputError(InputError):
    """The upload or file holds no bytes."""


class NotAnImageError(InputError):
    """The bytes are not an image format we can decode (or the file is corrupt/truncated)."""


class ImageTooLargeError(InputError):
    """The image has more pixels than the safe-decoding cap (decompression-bomb guard)."""


class ImageTooSmallError(InputError):
    """The image is too small to hold a face the models can use."""


class NoFaceFoundError(InputError):
    """No face was detected in the image."""


class FaceIndexError(InputError):
    """--face-index names a face the image does not have."""
