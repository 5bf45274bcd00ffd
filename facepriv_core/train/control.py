"""Kept for code written before facepriv_core.cancel and train.loop: import from those."""

from facepriv_core.cancel import Cancel, cancelled
from facepriv_core.train.loop import TrainProgress

__all__ = ["Cancel", "TrainProgress", "cancelled"]
