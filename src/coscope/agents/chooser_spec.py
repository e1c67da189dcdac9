"""Construction of the co-orchestrating agent (``policy.model: multitask``).

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
chooser policy is the single-modality baseline (target only, same kernel and rule). The
params are declared and checked in :mod:`coscope.catalog` (spec validation needs no torch).
"""

from __future__ import annotations

from typing import Any

from coscope.catalog import POLICIES


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
    rules = POLICIES.get(policy.name).params
    params: dict[str, Any] = {
        k: (float(v) if rules[k].kind == "number" else int(v))
        for k, v in policy.params.items()
        if rules[k].kind != "switch"
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
