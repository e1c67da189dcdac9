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

    The rules (known options, ``map_share`` in ``[0, 1]``, ``beta >= 0``) are the ones the
    catalog declares, so the spec and the agent check against one table.

    Raises:
        ConfigError: Unknown option or an option out of its bounds.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(DKL_POLICIES[name]))
    if unknown:
        raise ConfigError(
            f"Policy {name!r} does not take option(s) {unknown}; it takes: "
            f"{list(DKL_POLICIES[name]) or 'none'}."
        )
    try:
        catalog.check_policy(name, "dkl", params)
    except ValueError as exc:
        raise ConfigError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
