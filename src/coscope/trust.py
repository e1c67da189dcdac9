"""What reading a trace may do: nothing a stranger wrote into it runs on the reader's machine.

A trace names scalarizers, instrument kinds and a structured GP's mean law; a user's is
``package.module:function`` (or, for an instrument kind, an installed plug-in's entry point)
and running it means importing that module (with ``python -m coscope.cli`` the working
directory is on the path, so a trace could name a file lying beside it). ``coscope status``
never runs a scalarizer, builds an instrument or imports a law it does not ship; ``replay``,
``retrace`` and ``report`` refuse a trace naming user code unless the user passes
``--allow-user-code``. Network addresses come from the user's settings and environment only,
never from a trace (:mod:`coscope.flows.pause`). See
``docs/faults-and-security.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coscope.catalog import INSTRUMENT_KINDS
from coscope.errors import ConfigError
from coscope.plugins import import_reference, is_reference


def is_user_code(name: Any) -> bool:
    """Whether a scalarizer name is a user's ``package.module:function``."""
    return is_reference(name)


def is_user_instrument_kind(kind: Any) -> bool:
    """Whether an instrument kind is not one coscope ships (a reference or an entry point)."""
    return isinstance(kind, str) and kind not in INSTRUMENT_KINDS.builtin


def import_user_code(reference: str, what: str) -> Callable[..., Any]:
    """The function a user's ``package.module:function`` names, imported (running that
    module): only for a campaign that runs, never for reading a trace.

    Args:
        reference: ``package.module:function`` (``function`` may be dotted).
        what: What it is, for messages (``"scalarizer"``, ``"mean law"``).

    Raises:
        ConfigError: The module or function cannot be imported, or is not callable.
    """
    target = import_reference(reference, what)
    if not callable(target):
        raise ConfigError(f"{what} {reference!r} is not callable: name a function.")
    return target


def user_code_in(store: Any) -> list[str]:
    """User code named anywhere in the trace (spec, overrides, interventions), sorted:
    scalarizers, instrument kinds and the mean law of a structured GP (``policy.mean.law``,
    ``policy.models[].law``)."""
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
        models = policy.get("models") if isinstance(policy, dict) else None
        for model in models if isinstance(models, list) else ():
            if isinstance(model, dict):
                names.add(model.get("law"))
    kinds = {i.get("kind") for i in campaign.get("instruments", []) if isinstance(i, dict)}
    users = {str(n) for n in names if is_user_code(n)}
    users |= {f"instrument kind {k}" for k in kinds if is_user_instrument_kind(k)}
    return sorted(users)


def require_trusted(store: Any, allow_user_code: bool, command: str) -> None:
    """ConfigError when the trace names user code and the user did not allow running it."""
    names = [] if allow_user_code else user_code_in(store)
    if names:
        raise ConfigError(
            f"the trace at '{store.path}' names user code ({', '.join(names)}); `coscope "
            f"{command}` runs it only with --allow-user-code (do so only for a trace you trust)."
        )
