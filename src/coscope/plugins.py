"""User code a spec may name: ``package.module:attribute`` references and entry points.

A spec names a user's scalarizer or instrument kind as ``"package.module:attribute"``; an
installed package may also register instrument kinds under the entry-point group
:data:`INSTRUMENT_ENTRY_POINTS` (``[project.entry-points."coscope.instruments"]`` in its
``pyproject.toml``). Validating a spec checks the *form* of a reference only, without
importing it (:func:`reference_form_error`); the module is imported when the campaign
builds the part (:func:`import_reference`, :func:`load_entry_point`), so reading a trace
never runs it (:mod:`coscope.trust`).
"""

from __future__ import annotations

import importlib
import re
import sys
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from coscope.errors import ConfigError

USER_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
"""The form of a reference to user code, ``package.module:attribute``."""
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"builtins"}
"""Top-level modules user code may not come from (``builtins:max``, ``os:system``)."""
INSTRUMENT_ENTRY_POINTS = "coscope.instruments"
"""Entry-point group under which installed packages register instrument kinds."""


def is_reference(name: object) -> bool:
    """Whether ``name`` names user code as ``package.module:attribute`` (by its colon)."""
    return isinstance(name, str) and ":" in name


def reference_form_error(value: str, what: str, fix: str) -> str | None:
    """Why ``value`` is not a usable ``package.module:attribute`` reference, or None.

    Args:
        value: The reference.
        what: What it names, for the sentence (``"user scalarizer"``).
        fix: What to write instead, appended to the standard-library sentence.
    """
    if not USER_REFERENCE.fullmatch(value):
        return f"a {what} is named 'package.module:{_attribute(what)}' (Python identifiers)"
    if value.partition(".")[0].partition(":")[0] in STANDARD_LIBRARY:
        return f"a {what} must come from your own package, not Python's standard library; {fix}"
    return None


def _attribute(what: str) -> str:
    return "factory" if "instrument" in what else "function"


@lru_cache(maxsize=64)
def import_reference(reference: str, what: str) -> object:
    """The object ``package.module:attribute`` names, imported (once per process).

    Raises:
        ConfigError: The module or attribute is missing, or importing the module failed.
    """
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{what} {reference!r} cannot be imported ({exc}): give "
            f"'package.module:{_attribute(what)}' that the campaign can import (installed or on "
            "PYTHONPATH)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigError(
            f"{what} {reference!r} cannot be imported: its module raised "
            f"{type(exc).__name__} ({_one_line(exc)}); fix the module."
        ) from None
    return target


def entry_point_names(group: str = INSTRUMENT_ENTRY_POINTS) -> tuple[str, ...]:
    """Names registered under entry-point ``group`` by installed packages (nothing imported)."""
    return tuple(sorted(_entry_points(group)))


def load_entry_point(name: str, what: str, group: str = INSTRUMENT_ENTRY_POINTS) -> object:
    """The object entry point ``name`` of ``group`` names, imported.

    Raises:
        ConfigError: No such entry point, or it cannot be imported.
    """
    found = _entry_points(group).get(name)
    if found is None:
        raise ConfigError(
            f"no installed package registers {what} {name!r} (entry-point group {group!r}): "
            "install it, or name the factory as 'package.module:factory'."
        )
    return import_reference(found.value.replace(" ", ""), what)


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or "no message"
