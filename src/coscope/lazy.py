"""Packages whose names are imported on first use.

A package's ``__init__`` that imported every submodule would make each light module in it
(a protocol, a list of names) as costly as the heaviest one: ``coscope.agents.protocols``
would load torch. These packages export their names lazily instead (PEP 562)::

    __getattr__ = lazy_exports(__name__, {"GPAgent": "agent", "select": "selection"})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<exports[name]>``.

    Args:
        package: The package's ``__name__``.
        exports: Exported name -> submodule (relative to ``package``) that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
