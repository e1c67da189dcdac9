"""What reading a trace may do: nothing a stranger wrote into it runs on the reader's machine.

A trace names scalarizers and a structured GP's mean law; a user's is
``package.module:function`` and running it means importing that module (with ``python -m
coscope.cli`` the working directory is on the path, so a trace could name a file lying beside
it). ``coscope status`` never runs a scalarizer it does not ship nor imports a law;
``replay``, ``retrace`` and ``report`` refuse a trace naming user code unless the user passes
``--allow-user-code``. Network addresses come from the user's settings and
environment only, never from a trace (:mod:`coscope.flows.pause`). See
``docs/faults-and-security.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from coscope.errors import ConfigError


def is_user_code(name: Any) -> bool:
    """Whether a scalarizer name is a user's ``package.module:function``."""
    return isinstance(name, str) and ":" in name


def import_user_code(reference: str, what: str) -> Callable[..., Any]:
    """The function a user's ``package.module:function`` names, imported (running that
    module): only for a campaign that runs, never for reading a trace.

    Args:
        reference: ``package.module:function`` (``function`` may be dotted).
        what: What it is, for messages (``"scalarizer"``, ``"mean law"``).

    Raises:
        ConfigError: The module or function cannot be imported, or is not callable.
    """
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{what} {reference!r} cannot be imported ({exc}): give "
            "'package.module:function' that the campaign can import (installed or on PYTHONPATH)."
        ) from None
    if not callable(target):
        raise ConfigError(f"{what} {reference!r} is not callable: name a function.")
    return target


def user_code_in(store: Any) -> list[str]:
    """User code named anywhere in the trace, sorted: scalarizers and the mean law of a
    structured GP (``policy.mean.law``), in the spec, overrides or interventions."""
    campaign = {**store.campaign, **store.get_attr("overrides", {})}
    named = [campaign.get("scalarizer", {}), *campaign.get("auxiliary", [])]
    named += [i.payload for i in store.interventions() if i.kind == "scalarizer"]
    names = {s.get("name") for s in named if isinstance(s, dict)}
    policies = [campaign.get("policy")]
    policies += [i.payload for i in store.interventions() if i.kind == "policy"]
    for policy in policies:
        mean = policy.get("mean") if isinstance(policy, dict) else None
        if isinstance(mean, dict):
            names.add(mean.get("law"))
    return sorted(str(n) for n in names if is_user_code(n))


def require_trusted(store: Any, allow_user_code: bool, command: str) -> None:
    """ConfigError when the trace names user code and the user did not allow running it."""
    names = [] if allow_user_code else user_code_in(store)
    if names:
        raise ConfigError(
            f"the trace at '{store.path}' names user code ({', '.join(names)}); `coscope "
            f"{command}` runs it only with --allow-user-code (do so only for a trace you trust)."
        )
