"""Spec checks and construction of the co-orchestrating agent (``policy.model: multitask``).

Spec surface::

    scalarizer: {name: peak_position, modality: raman, params: {lo: 120, hi: 200}}  # target
    auxiliary:  [{name: loop_area, modality: pfm_loop}]     # one scalar per other modality
    policy: {name: gain_per_cost, model: multitask, n_initial: 6,
             params: {rank: 2, n_candidates: 4096, n_reference: 256, refit_growth: 1.5,
                      background_fit: 1, use_structure: 0, boundaries: 1}}

``model: multitask`` learns from the target and every auxiliary modality; ``model: gp`` with a
chooser policy is the single-modality baseline (target only, same kernel and rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CHOOSER_PARAMS = ("rank", "n_candidates", "n_reference", "refit_growth")
"""Policy params of the chooser policies: integers >= 1, ``refit_growth`` a number >= 1."""
CHOOSER_FLAGS = ("background_fit", "use_structure")
"""0/1 policy params: fit in a background thread; add the sample's structure as an input."""
CHOOSER_COUNTS = ("boundaries",)
"""Integer policy params >= 0: learned boundary features of the kernel (0..4, default 0)."""


def check_chooser_policy(name: str, model: str, params: Mapping[str, float]) -> bool:
    """True if ``name``/``model`` is a chooser policy (validated); False for other policies.

    Raises:
        ValueError: One sentence naming the wrong field and the fix.
    """
    from coscope.agents.multitask_agent import CHOOSER_POLICIES

    if name not in CHOOSER_POLICIES:
        if model == "multitask":
            raise ValueError(
                f"model: multitask needs policy {' or '.join(CHOOSER_POLICIES)}, not '{name}'"
            )
        return False
    if model not in ("gp", "multitask"):
        raise ValueError(f"policy '{name}' works with model multitask (or gp), not '{model}'")
    takes = CHOOSER_PARAMS + CHOOSER_FLAGS + CHOOSER_COUNTS
    unknown = sorted(set(params) - set(takes))
    if unknown:
        raise ValueError(f"policy '{name}' does not take params {unknown}; it takes {list(takes)}")
    for key, value in params.items():
        if key in CHOOSER_COUNTS:
            from coscope.models.boundary_warp import MAX_BOUNDARIES

            if value != int(value) or not 0 <= value <= MAX_BOUNDARIES:
                raise ValueError(
                    f"policy param '{key}' must be an integer 0..{MAX_BOUNDARIES} "
                    f"(0: plain kernel), got {value!r}"
                )
            continue
        if key in CHOOSER_FLAGS:
            if value not in (0, 1):
                raise ValueError(f"policy param '{key}' is a switch: use 0 or 1, got {value!r}")
            continue
        if value < 1 or (key != "refit_growth" and value != int(value)):
            kind = "a number" if key == "refit_growth" else "an integer"
            raise ValueError(f"policy param '{key}' must be {kind} >= 1, got {value!r}")
    return True


def check_auxiliary(target: Any, auxiliary: Sequence[Any], offered: set[str], policy: Any) -> None:
    """ValueError unless the auxiliary scalarizers suit the spec (see module docstring)."""
    modalities = [a.modality for a in auxiliary]
    for m in modalities:
        if m not in offered:
            raise ValueError(
                f"auxiliary modality '{m}' is measured by no instrument; use one of "
                f"{', '.join(sorted(offered))}"
            )
    if target.modality in modalities or len(set(modalities)) != len(modalities):
        raise ValueError(
            "auxiliary scalarizers need distinct modalities other than the target "
            f"'{target.modality}'"
        )
    if policy.model == "multitask" and not auxiliary:
        raise ValueError(
            "model: multitask needs at least one auxiliary scalarizer "
            "(auxiliary: [{name, modality}]) for a second modality"
        )


def chooser_from_spec(spec: Any, sample: Any) -> Any:
    """The :class:`~coscope.agents.multitask_agent.MultiTaskAgent` a chooser spec names."""
    from coscope.agents.multitask_agent import MultiTaskAgent, Reducer

    policy = spec.policy
    scalarizers = [spec.scalarizer]
    if policy.model == "multitask":
        scalarizers += list(spec.auxiliary)
    reducers = {
        s.modality: Reducer(s.name, dict(s.params), sample.info(s.modality).axis)
        for s in scalarizers
    }
    params: dict[str, Any] = {
        k: (float(v) if k == "refit_growth" else int(v))
        for k, v in policy.params.items()
        if k not in CHOOSER_FLAGS
    }
    params["background_fit"] = bool(policy.params.get("background_fit", 0))
    if policy.params.get("use_structure", 0):
        params["features"] = sample.structure
    return MultiTaskAgent(
        sample.shape,
        reducers,
        policy=policy.name,
        seed=spec.seed,
        n_initial=policy.n_initial,
        refit_every=policy.refit_every,
        fit_iterations=policy.fit_iterations,
        **params,
    )
