"""Defences from the literature, one module each, behind a registry."""

from __future__ import annotations

import importlib
import pkgutil

from facepriv_core.defences.base import Defence, DefenceParams, Paper, Protected, SecretKey

_REGISTRY: dict[str, type[Defence]] = {}
_SKIP = {"base"}


def register(name: str):
    """Class decorator: make a Defence subclass available under `name`."""

    def wrap(cls: type[Defence]) -> type[Defence]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load() -> None:
    """Import every module of this package once, so each registers its defences."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _SKIP:
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    _load()
    return list(_REGISTRY)


def get(name: str, device: str = "cpu") -> Defence:
    _load()
    try:
        return _REGISTRY[name](device)
    except KeyError:
        raise KeyError(f"unknown defence {name!r}; known: {', '.join(_REGISTRY)}") from None


__all__ = ["Defence", "DefenceParams", "Paper", "Protected", "SecretKey", "get", "names",
           "register"]
