"""What a model entry is and the table of them; catalog.py fills it, zoo.py reads it.

A leaf of models/ (only dataclasses and errors), so the catalog can register entries without
importing the zoo and the zoo can import the catalog at module level: no cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facepriv_core.errors import FacePrivError

CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"  # package data

TASKS = ("recognition", "gender", "age", "emotion", "race", "detection")


class ModelUnavailableError(FacePrivError, RuntimeError):
    """The model cannot be loaded here; the message says why and how to get it."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. `loader` is 'module:function', imported lazily and called as
    function(device, *loader_args)."""

    name: str
    task: str
    licence: str
    source: str
    summary: str
    loader: str
    check: Callable[[], str | None]
    differentiable: bool = True
    loader_args: tuple[str, ...] = ()
    card_name: str | None = None  # entries of one family may share a card

    @property
    def card(self) -> Path:
        return CARDS_DIR / f"{self.card_name or self.name}.md"


@dataclass(frozen=True)
class ModelStatus:
    """Availability of one entry, as listed by `facepriv models list`."""

    name: str
    task: str
    available: bool
    reason: str | None
    licence: str
    source: str
    differentiable: bool
    summary: str
    gate: dict[str, Any] | None = None  # the recorded zoo-gate figures, if any

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


ENTRIES: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add an entry (catalog.py registers the built-in ones at import)."""
    if entry.task not in TASKS:
        raise ValueError(f"unknown task {entry.task!r}; expected one of {TASKS}")
    ENTRIES[entry.name] = entry
    return entry
