"""The seed-effect study: one policy, one campaign seed, N different initial designs.

Seed set ``s`` draws ``K`` distinct pixels from ``default_rng([spec.seed, 2718281, s])`` and
runs the campaign with ``seed_points`` = those pixels (in place of the spec's own) and
``policy.n_initial = K``, so the policy takes over right after them. The campaign seed — and
with it the sample, the measurement-noise seeds and the model-fit seeds — is the same for
every set: only the initial design differs.

**Injection** (``inject_at=k, inject=m``): after the ``k``-th measurement the worker draws
``m`` pixels not yet measured from ``default_rng([spec.seed, 3141592, s])``, appends them to
the live agent's seed points (the agent proposes seed points before anything else, so they
are measured next, one per step) and posts a ``seed_points`` request to the campaign's inbox,
which the loop records in the trace as an intervention at the next step. Limits: the loop
itself does not act on ``seed_points`` requests, so the injection works only through this
driver (a request posted to a running ``coscope run`` is recorded, not applied), and a trace
resumed after the injection would not re-apply it (the agent is rebuilt from the spec).
Injected points count against the measurement budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coscope.config import CampaignSpec
from coscope.errors import ConfigError
from coscope.infra.compose import sample_from_spec, space_from_spec
from coscope.spaces import Space
from coscope.studies.benchmark import _validate, policy_entry, policy_spec
from coscope.studies.study import StudyPlan, base_job_spec, check_out, grid_pixels


def initial_design(space: Space, k: int, seed: int, seed_set: int) -> list[list[int]]:
    """``k`` distinct candidates ``[row, col]`` of ``space`` for seed set ``seed_set``."""
    W = space.layout[1]
    rng = np.random.default_rng([seed, 2718281, seed_set])
    picks = rng.choice(space.indices, size=k, replace=False)
    return [[int(i) // W, int(i) % W] for i in picks]


def plan_seeds(
    spec: CampaignSpec,
    *,
    seed_sets: int,
    out: Path,
    initial: int | None = None,
    inject_at: int | None = None,
    inject: int | None = None,
    policy: str | None = None,
    workers: int = 2,
) -> StudyPlan:
    """Validate the request and build one job per seed set; writes nothing.

    Raises:
        ConfigError: Bad counts, ``inject_at`` without ``inject`` (or the reverse), an
            injection outside the budget, an invalid policy, or a non-empty ``out``.
    """
    if seed_sets < 1:
        raise ConfigError(f"--seed-sets must be at least 1, got {seed_sets}.")
    if spec.sample.box is not None:
        raise ConfigError(
            "the seed study draws initial designs among a finite space's candidates; a box "
            "campaign's first points are sample.box.seed_points: compare seeds with "
            "`coscope benchmark --seeds N` instead."
        )
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    k = spec.policy.n_initial if initial is None else initial
    if k < 1:
        raise ConfigError(f"--initial must be at least 1, got {k}.")
    if (inject_at is None) != (inject is None):
        raise ConfigError("--inject-at and --inject go together; give both or neither.")
    budget = spec.budget.max_measurements
    if inject_at is not None and inject is not None:
        if inject < 1 or inject_at < 1:
            raise ConfigError(
                f"--inject-at and --inject must be at least 1, got {inject_at} and {inject}."
            )
        if budget is not None and inject_at >= budget:
            raise ConfigError(
                f"--inject-at {inject_at} is not before the end of the campaign "
                f"(budget.max_measurements {budget}); choose a smaller step."
            )
    check_out(out)
    n_pixels = grid_pixels(spec)
    if k > n_pixels:
        raise ConfigError(f"--initial {k} exceeds the {n_pixels} pixels of the sample.")
    space = space_from_spec(spec.sample, sample_from_spec(spec.sample, spec.seed))
    entry = policy or policy_entry(spec.policy)
    jobs = []
    for s in range(seed_sets):
        points = initial_design(space, k, spec.seed, s)
        pol = {**policy_spec(spec, entry), "n_initial": k}
        data = base_job_spec(spec, out / "runs" / f"set-{s}", seed_points=points, policy=pol)
        _validate(data, entry)
        job = {"keys": {"policy": entry, "seed_set": s}, "spec": data}
        if inject_at is not None:
            job["inject"] = {"at": inject_at, "n": inject, "seed": [spec.seed, 3141592, s]}
        jobs.append(job)
    injection = (
        f" {inject} random points injected after measurement {inject_at}."
        if inject_at is not None
        else ""
    )
    return StudyPlan(
        kind="seeds",
        spec=spec,
        jobs=jobs,
        key_names=("policy", "seed_set"),
        group_key="policy",
        out=out,
        workers=workers,
        params={
            "spec": spec.to_json_dict(),
            "policy": entry,
            "seed_sets": seed_sets,
            "initial": k,
            "inject_at": inject_at,
            "inject": inject,
        },
        n_pixels=n_pixels,
        notes=(
            f"Policy {entry}, campaign seed {spec.seed} fixed, {seed_sets} initial designs of "
            f"{k} random points each.{injection}",
        ),
    )
