"""Attacks on protected faces, one module per family, behind a registry."""

from __future__ import annotations

from facepriv_core.attacks.base import (
    Attack,
    AttackCancelled,
    AttackCase,
    AttackParams,
    AttackResult,
    ProgressEvent,
    ThreatModel,
)
from facepriv_core.registry import Registry

_registry: Registry[Attack] = Registry("attack", __name__,
                                       skip=frozenset({"base", "_common", "_rules"}))
register = _registry.register
names = _registry.names
get = _registry.get
classes = _registry.classes

__all__ = ["Attack", "AttackCancelled", "AttackCase", "AttackParams", "AttackResult",
           "ProgressEvent", "ThreatModel", "classes", "get", "names", "register"]
