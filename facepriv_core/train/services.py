"""Making a defence's authorised service ready before its utility is measured.

Most defences' services need nothing; PPFR-FD's is a trained model, trained once per wire
configuration on first use (this machine's SFHQ and Olivetti people 0-19, minutes on CPU, on
the GPU when present) and cached for every later run and key. This lives in train/ because it
trains: defences/ only say whether their service is ready (`Defence.service_ready`) and never
import train/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facepriv_core.cancel import Cancel
from facepriv_core.defences.base import Defence, Progress, ProtectionCancelled

Trainer = Callable[[Defence[Any], Any, Progress | None, Cancel | None], None]


def _train_ppfr_fd(defence: Defence[Any], params: Any, progress: Progress | None,
                   cancel: Cancel | None) -> None:
    from facepriv_core.train.ppfr_fd_service import train_service

    ckpt = train_service(params=params, device=defence.device, cancel=cancel,
                         progress=(lambda s, t, _loss: progress(s, t)) if progress else None)
    if ckpt["cancelled"]:
        raise ProtectionCancelled("PPFR-FD service training cancelled")


#: Defences whose authorised service is trained here, by registry name.
TRAINERS: dict[str, Trainer] = {"ppfr_fd": _train_ppfr_fd}


def prepare_service(defence: Defence[Any], params: Any, progress: Progress | None = None,
                    cancel: Cancel | None = None) -> None:
    """Train `defence`'s service for `params` unless it is ready (a no-op for most defences);
    stops with ProtectionCancelled when `cancel` fires."""
    trainer = TRAINERS.get(defence.name)
    if trainer is None or defence.service_ready(params):
        return
    trainer(defence, params, progress, cancel)
