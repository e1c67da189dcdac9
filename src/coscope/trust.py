"""What reading a trace may do: nothing a stranger wrote into it runs on the reader's machine.

A trace names scalarizers; a user's is ``package.module:function`` and running it means
importing that module (with ``python -m coscope.cli`` the working directory is on the path,
so a trace could name a file lying beside it). ``coscope status`` never runs a scalarizer it
does not ship; ``replay``, ``retrace`` and ``report`` refuse a trace naming user code unless
the user passes ``--allow-user-code``. Network addresses come from the user's settings and
environment only, never from a trace (:mod:`coscope.flows.pause`). See
``docs/faults-and-security.md``.
"""

from __future__ import annotations

from typing import Any

from coscope.errors import ConfigError


def is_user_code(name: Any) -> bool:
    """Whether a scalarizer name is a user's ``package.module:function``."""
    return isinstance(name, str) and ":" in name


def user_code_in(store: Any) -> list[str]:
    """User scalarizers named anywhere in the trace: spec, overrides, interventions; sorted."""
    campaign = {**store.campaign, **store.get_attr("overrides", {})}
    named = [campaign.get("scalarizer", {}), *campaign.get("auxiliary", [])]
    named += [i.payload for i in store.interventions() if i.kind == "scalarizer"]
    names = {s.get("name") for s in named if isinstance(s, dict)}
    return sorted(str(n) for n in names if is_user_code(n))


def require_trusted(store: Any, allow_user_code: bool, command: str) -> None:
    """ConfigError when the trace names user code and the user did not allow running it."""
    names = [] if allow_user_code else user_code_in(store)
    if names:
        raise ConfigError(
            f"the trace at '{store.path}' names user code ({', '.join(names)}); `coscope "
            f"{command}` runs it only with --allow-user-code (do so only for a trace you trust)."
        )
