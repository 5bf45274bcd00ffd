"""Training the service-side models that some defences need (one module per defence)."""

from facepriv_core.train.ppfr_fd_service import train_service as train_ppfr_fd_service
from facepriv_core.train.san_autoencoder import train_san_autoencoder

__all__ = ["train_ppfr_fd_service", "train_san_autoencoder"]
