"""Plug-in instrument factories for the tests (named in specs as 'tests.user_instruments:…').

The good one is the worked example's (examples/acme_afm); the others each break the factory
contract in one way coscope must refuse with one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from coscope.spaces import Space


def raises(name: str, space: Space, modalities: Sequence[str] | None = None) -> object:
    """A factory whose driver fails to start."""
    raise RuntimeError("vendor SDK not licensed on this host")


def not_an_instrument(name: str, space: Space, modalities: Sequence[str] | None = None) -> object:
    """Returns a number instead of an instrument."""
    return 42


def strict(name: str, space: Space, modalities: Sequence[str] | None = None, *, gain: float):
    """Takes exactly one option, ``gain`` (never built in the tests)."""
    raise AssertionError("not reached")


NOT_CALLABLE = 3
