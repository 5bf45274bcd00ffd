"""Training the service-side models that some defences need (one module per defence)."""

from facepriv_core.train.ppfr_fd_adapter import train_ppfr_fd_adapter

__all__ = ["train_ppfr_fd_adapter"]
