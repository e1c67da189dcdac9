"""Named registries: how samples, instruments, scalarizers and policies are extended.

A new kind is a decorated function; a spec names it; an unknown name is a ConfigError that
lists the known ones. A :class:`Names` is the light half of a registry: the names a spec may
use, known without importing the modules that register them (:mod:`coscope.catalog`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from coscope.errors import ConfigError

T = TypeVar("T")


class Names:
    """The names of a registry's items, known before the items are imported.

    Args:
        what: What the names are, for messages (``"sample kind"`` …).
        builtin: The names coscope itself registers (a test checks them against the registry).
    """

    def __init__(self, what: str, builtin: tuple[str, ...]) -> None:
        self.what = what
        self.builtin = tuple(sorted(builtin))
        self._names = set(builtin)

    def declare(self, name: str) -> None:
        """Add ``name`` (a kind registered outside coscope, e.g. by a user's module)."""
        self._names.add(name)

    def names(self) -> tuple[str, ...]:
        """Declared names, sorted."""
        return tuple(sorted(self._names))

    def check(self, name: str) -> str:
        """``name`` if declared, else a ValueError (for a pydantic validator) listing them."""
        if name not in self._names:
            raise ValueError(f"unknown {self.what}; use one of {', '.join(self.names())}")
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._names


class Registry(Generic[T]):
    """Items registered by name.

    Args:
        what: What the items are, for messages (``"scalarizer"``, ``"sample kind"`` …).
        names: The light name list this registry declares each of its names in, so that a
            spec naming a registered item validates without importing it.
    """

    def __init__(self, what: str, names: Names | None = None) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        self._names = names

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an item under ``name`` (a second, different item is refused)."""

        def decorate(item: T) -> T:
            if self._items.get(name, item) is not item:
                raise ConfigError(f"{self.what} {name!r} is already registered; pick another name.")
            self._items[name] = item
            if self._names is not None:
                self._names.declare(name)
            return item

        return decorate

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._items))

    def get(self, name: str) -> T:
        """The item registered as ``name``; ConfigError listing the known names if unknown."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.what} {name!r}: use one of {', '.join(self.names())}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items
