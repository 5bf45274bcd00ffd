"""A plugin registry: classes register by name with a decorator; the modules of their package
are discovered and imported once, on first use, so adding a plugin is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from facepriv_core.errors import UnknownNameError


class Plugin(Protocol):
    """What a registered class is: built with the device it runs on."""

    def __init__(self, device: Any = ...) -> None: ...


T = TypeVar("T", bound=Plugin)


class Registry(Generic[T]):
    """Named plugin classes of one kind (defences, attacks), instantiated with a device."""

    def __init__(self, kind: str, package: str, skip: frozenset[str] = frozenset({"base"})
                 ) -> None:
        self.kind = kind
        self.package = package
        self.skip = skip
        self._classes: dict[str, type[T]] = {}
        self._discovered = False
        self._lock = threading.Lock()

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make the class available under `name` (and set its `name`)."""

        def wrap(cls: type[T]) -> type[T]:
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return wrap

    def _discover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            pkg = importlib.import_module(self.package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if mod.name not in self.skip:
                    importlib.import_module(f"{self.package}.{mod.name}")
            self._discovered = True

    def names(self) -> list[str]:
        self._discover()
        return list(self._classes)

    def classes(self) -> dict[str, type[T]]:
        """Every registered class by name, not instantiated (for listings and metadata)."""
        self._discover()
        return dict(self._classes)

    def _load_named(self, name: str) -> None:
        """Import only the module named like the plugin, when there is one: a CLI call that
        runs one attack need not import the others (and their libraries)."""
        if name in self._classes or self._discovered or not name.isidentifier():
            return
        pkg = importlib.import_module(self.package)
        if name in self.skip or name not in {m.name for m in pkgutil.iter_modules(pkg.__path__)}:
            return
        importlib.import_module(f"{self.package}.{name}")

    def get(self, name: str, device: Any = "cpu") -> T:
        self._load_named(name)
        if name not in self._classes:
            self._discover()
        try:
            cls = self._classes[name]
        except KeyError:
            known = ", ".join(self._classes)
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None
        return cls(device)
