"""The composition root's hook for ``policy: {name: conavigate}``: spec -> co-navigation agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coscope.agents.calibration import ThetaSpace
from coscope.agents.conavigation import CoNavigationAgent
from coscope.types import Location


def conavigation_agent(spec: Any, sample: Any) -> CoNavigationAgent:
    """The agent of a spec with ``policy: {name: conavigate}`` (composition root's hook).

    The first instrument of kind ``theory_*`` is the simulator; its ``options.calibrate``
    (``{name: [lo, hi]}``) are the calibrated parameters, ``options.theta`` the fixed ones,
    ``options.sizes`` the lattice fidelities. ``policy.params`` may set ``n_design`` and
    ``n_eff`` (default: estimated from the residuals). The experiment modality is the
    scalarizer's.

    Raises:
        ConfigError: No theory instrument, or missing / invalid calibration bounds.
    """
    from coscope.errors import ConfigError
    from coscope.instruments.theory import LATTICE_THETA, LGD_THETA
    from coscope.scalarizers import scalarize

    theory = [i for i in spec.instruments if i.kind.startswith("theory_")]
    if not theory:
        raise ConfigError(
            "policy 'conavigate' needs a theory instrument: add one of kind theory_lgd or "
            "theory_lattice to instruments."
        )
    inst = theory[0]
    known = LATTICE_THETA if inst.kind == "theory_lattice" else LGD_THETA
    bounds = inst.options.get("calibrate") or {}
    unknown = sorted(set(bounds) - set(known))
    if not bounds or unknown or not isinstance(bounds, Mapping):
        raise ConfigError(
            f"instrument {inst.name!r} needs options.calibrate {{name: [lo, hi]}} over names in "
            f"{sorted(known)} (got {dict(bounds) if isinstance(bounds, Mapping) else bounds})."
        )
    try:
        space = ThetaSpace.from_bounds(bounds)
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"instrument {inst.name!r}: {exc}.") from None
    params = dict(spec.policy.params)
    extra = sorted(set(params) - {"n_design", "n_eff"})
    if extra:
        raise ConfigError(
            f"policy 'conavigate' got unknown params {extra}: use n_design and n_eff."
        )
    scal = spec.scalarizer
    axis = sample.info(scal.modality).axis

    def target(loops: np.ndarray) -> np.ndarray:
        return np.array([scalarize(scal.name, y, axis, scal.params) for y in loops])

    sizes = inst.options.get("sizes", (8, 16, 32)) if inst.kind == "theory_lattice" else None
    return CoNavigationAgent(
        sample.shape,
        sample.structure,
        scal.modality,
        inst.modalities[0],
        space,
        fixed_theta=inst.options.get("theta", {}),
        sizes=sizes,
        target=target,
        seed=spec.seed,
        n_initial=spec.policy.n_initial,
        n_design=int(params.get("n_design", 8)),
        seed_points=[Location(r, c) for r, c in spec.seed_points],
        n_eff=None if params.get("n_eff") is None else float(params["n_eff"]),
        voltage=axis,
        model=inst.kind,
    )
