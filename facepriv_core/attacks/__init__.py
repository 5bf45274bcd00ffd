"""Attacks on protected faces, one module per family, behind a registry."""

from __future__ import annotations

import importlib
import pkgutil

from facepriv_core.attacks.base import (
    Attack,
    AttackCancelled,
    AttackCase,
    AttackParams,
    AttackResult,
    ProgressEvent,
    ThreatModel,
)

_REGISTRY: dict[str, type[Attack]] = {}
_SKIP = {"base"}


def register(name: str):
    """Class decorator: make an Attack subclass available under `name`."""

    def wrap(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _SKIP:
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    _load()
    return list(_REGISTRY)


def get(name: str, device: str = "cpu") -> Attack:
    _load()
    try:
        return _REGISTRY[name](device)
    except KeyError:
        raise KeyError(f"unknown attack {name!r}; known: {', '.join(_REGISTRY)}") from None


__all__ = ["Attack", "AttackCancelled", "AttackCase", "AttackParams", "AttackResult",
           "ProgressEvent", "ThreatModel", "get", "names", "register"]
