"""Named registries: how samples, instruments, scalarizers and policies are extended.

A new kind is a decorated function; a spec names it; an unknown name is a ConfigError that
lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from coscope.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items registered by name.

    Args:
        what: What the items are, for messages (``"scalarizer"``, ``"sample kind"`` …).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an item under ``name`` (a second, different item is refused)."""

        def decorate(item: T) -> T:
            if self._items.get(name, item) is not item:
                raise ConfigError(f"{self.what} {name!r} is already registered; pick another name.")
            self._items[name] = item
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
