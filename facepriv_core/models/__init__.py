"""Model zoo: `get(name)`, `list()` and the registry behind them."""

from facepriv_core.models.registry import (
    ModelEntry,
    ModelStatus,
    ModelUnavailableError,
    register,
)
from facepriv_core.models.zoo import (
    available,
    entry,
    get,
    list_models,
    resolve_device,
    status,
)

list = list_models

__all__ = [
    "ModelEntry",
    "ModelStatus",
    "ModelUnavailableError",
    "available",
    "entry",
    "get",
    "list",
    "list_models",
    "register",
    "resolve_device",
    "status",
]
