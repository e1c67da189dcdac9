"""Spec checks and construction of the co-orchestrating agent (``policy.model: multitask``).

Spec surface::

    scalarizer: {name: peak_position, modality: raman, params: {lo: 120, hi: 200}}  # target
    auxiliary:  [{name: loop_area, modality: pfm_loop}]     # one scalar per other modality
    policy: {name: gain_per_cost, model: multitask, n_initial: 6,
             params: {rank: 2, n_candidates: 4096, n_reference: 256, refit_growth: 1.5,
                      background_fit: 1, use_structure: 0, boundaries: 1}}

With ``params.latent_dim: d >= 1`` (optional ``vae_epochs``, ``vae_growth``) every modality is
reduced by its own VAE to ``d`` latent targets instead of its scalarizer, which then only maps
the decoded spectra for the reports (:mod:`coscope.agents.latent_agent`).

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
LATENT_PARAMS = ("latent_dim", "vae_epochs", "vae_growth")
"""VAE latents as targets: latent size 0..8 (0: scalarizers), epochs >= 1, growth >= 1."""
MAX_LATENT_DIM = 8


def _check_latent(params: Mapping[str, float]) -> None:
    """ValueError unless the VAE-latent params are usable (see :data:`LATENT_PARAMS`)."""
    dim = params.get("latent_dim", 0)
    if dim != int(dim) or not 0 <= dim <= MAX_LATENT_DIM:
        raise ValueError(
            f"policy param 'latent_dim' must be an integer 0..{MAX_LATENT_DIM} "
            f"(0: scalarizers), got {dim!r}"
        )
    extra = sorted(k for k in ("vae_epochs", "vae_growth") if k in params)
    if extra and dim == 0:
        raise ValueError(f"policy params {extra} need latent_dim >= 1; set latent_dim or drop them")
    if dim and params.get("background_fit", 0):
        raise ValueError("latent_dim does not work with background_fit: set background_fit: 0")


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
    takes = CHOOSER_PARAMS + CHOOSER_FLAGS + CHOOSER_COUNTS + LATENT_PARAMS
    unknown = sorted(set(params) - set(takes))
    if unknown:
        raise ValueError(f"policy '{name}' does not take params {unknown}; it takes {list(takes)}")
    _check_latent(params)
    for key, value in params.items():
        if key == "latent_dim":
            continue
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
        growth = key in ("refit_growth", "vae_growth")
        if value < 1 or (not growth and value != int(value)):
            kind = "a number" if growth else "an integer"
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
    from coscope.agents.latent_agent import LatentMultiTaskAgent
    from coscope.agents.multitask_agent import MultiTaskAgent
    from coscope.agents.protocols import Reducer

    policy = spec.policy
    scalarizers = [spec.scalarizer]
    if policy.model == "multitask":
        scalarizers += list(spec.auxiliary)
    reducers = {
        s.modality: Reducer(s.name, dict(s.params), sample.info(s.modality).axis)
        for s in scalarizers
    }
    params: dict[str, Any] = {
        k: (float(v) if k in ("refit_growth", "vae_growth") else int(v))
        for k, v in policy.params.items()
        if k not in CHOOSER_FLAGS
    }
    params["background_fit"] = bool(policy.params.get("background_fit", 0))
    if policy.params.get("use_structure", 0):
        params["features"] = sample.structure
    agent_class = MultiTaskAgent
    if params.get("latent_dim", 0):
        agent_class = LatentMultiTaskAgent
    else:
        params.pop("latent_dim", None)
    return agent_class(
        sample.shape,
        reducers,
        policy=policy.name,
        seed=spec.seed,
        n_initial=policy.n_initial,
        refit_every=policy.refit_every,
        fit_iterations=policy.fit_iterations,
        **params,
    )
