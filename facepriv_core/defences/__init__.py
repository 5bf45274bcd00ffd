"""Defences from the literature, one module each, behind a registry."""

from __future__ import annotations

from facepriv_core.defences.base import Defence, DefenceParams, Paper, Protected, SecretKey
from facepriv_core.registry import Registry

_registry: Registry[Defence] = Registry("defence", __name__)
register = _registry.register
names = _registry.names
get = _registry.get
classes = _registry.classes

__all__ = ["Defence", "DefenceParams", "Paper", "Protected", "SecretKey", "classes", "get", "names",
           "register"]
