"""Names and options of the DKL agent's own policies, checked in plain Python (no torch).

The campaign spec (:mod:`coscope.config`) validates ``policy: {name: balance, params:
{map_share: 0.3}}`` with :func:`check_dkl_policy` without importing torch; the agent calls
it again where it is built. Semantics: :mod:`coscope.agents.map_objective`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coscope import catalog
from coscope.errors import ConfigError

DKL_POLICIES: dict[str, tuple[str, ...]] = {
    name: tuple(catalog.POLICIES.get(name).params) for name in catalog.policy_names("dkl")
}
"""DKL-only policies and the options each takes (declared in :mod:`coscope.catalog`)."""


def check_dkl_policy(name: str, params: Mapping[str, Any] | None) -> None:
    """Raise :class:`ConfigError` when ``params`` do not fit DKL policy ``name``.

    Raises:
        ConfigError: Unknown option, ``map_share`` outside ``[0, 1]`` or ``beta < 0``.
    """
    params = dict(params or {})
    allowed = DKL_POLICIES[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Policy {name!r} does not take option(s) {unknown}; it takes: "
            f"{list(allowed) or 'none'}."
        )
    share = params.get("map_share", 0.5)
    if not (isinstance(share, int | float) and 0.0 <= float(share) <= 1.0):
        raise ConfigError(f"balance option map_share must lie in [0, 1]; got {share!r}.")
    beta = params.get("beta", 4.0)
    if not (isinstance(beta, int | float) and float(beta) >= 0.0):
        raise ConfigError(f"balance option beta must be >= 0; got {beta!r}.")
