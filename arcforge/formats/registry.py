"""A registry of plug-ins by name: upstream formats, source kinds and export writers each keep one.

A plug-in module calls ``@registry.register("name")`` on its class; the registry imports its built-in
modules on first use, so listing or looking up a name never depends on import order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from arcforge.errors import ArcforgeError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes registered by name; ``noun``, ``plural`` and ``error`` shape the messages
    (``unknown format 'x'; known formats: ...``)."""

    def __init__(self, noun: str, plural: str, error: type[ArcforgeError], builtins: tuple[str, ...]) -> None:
        self.noun = noun
        self.plural = plural
        self.error = error
        self.builtins = builtins  # module names imported on first use, in this order
        self._classes: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            known = self._classes.get(name)
            if known is not None and known is not cls:
                raise self.error(f"{self.noun} {name!r} is registered twice ({known} and {cls})")
            cls.name = name
            self._classes[name] = cls
            return cls

        return deco

    def classes(self) -> dict[str, T]:
        """Every registered class by name, in registration order (the built-ins first)."""
        if not self._loaded:
            self._loaded = True
            for module in self.builtins:
                importlib.import_module(module)
        return dict(self._classes)

    def names(self) -> list[str]:
        return sorted(self.classes())

    def get(self, name: str) -> T:
        """The class registered as ``name``; the error lists the known names."""
        known = self.classes()
        if name not in known:
            raise self.error(f"unknown {self.noun} {name!r}; known {self.plural}: {', '.join(sorted(known))}")
        return known[name]
