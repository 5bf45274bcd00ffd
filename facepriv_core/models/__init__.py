"""Model zoo: `get(name)`, `list()` and the registry behind them."""

from facepriv_core.models.zoo import (
    ModelEntry,
    ModelStatus,
    ModelUnavailableError,
    available,
    entry,
    get,
    list_models,
    register,
    resolve_device,
    status,
)

list = list_models  # noqa: A001 - the issue's API is facepriv_core.models.list()

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
