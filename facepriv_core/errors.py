"""The root of every error a user can cause and fix.

Each subclass carries a message meant for the user (what went wrong, what to do); the CLI prints
it as one line with exit code 2 and the app shows it as is. Anything that is not a
FacePrivError is a bug in FacePriv and is reported as one.
"""


class FacePrivError(Exception):
    """Base class: a failure the user can act on; the message says how."""


class UsageError(FacePrivError, ValueError):
    """An argument, parameter or spec value the user must fix."""


class UnknownNameError(FacePrivError, KeyError):
    """A defence, attack, model or other registered name that does not exist.

    A KeyError too, so lookups that catch KeyError keep working; str() is the plain message
    (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DeviceError(UsageError):
    """A --device that does not exist or is not present on this machine."""


class SpecError(UsageError):
    """An audit spec file that cannot be read safely (not YAML, a tag, an alias, too big)."""


class InvalidParamsError(UsageError):
    """Parameters that do not validate; the message lists the valid ones with their bounds."""


class CheckpointError(FacePrivError, ValueError):
    """A checkpoint path that is missing, too big or not a FacePriv checkpoint of that kind."""
