"""The benchmark study: N seeds x each policy of one campaign spec.

A policy entry is ``[model:]name``: ``ei``, ``ucb``, ``maxvar``, ``random``, ``raster`` run on
the exact GP (``model: gp``), ``dkl:ei`` or ``dkl:thompson`` on deep kernel learning. The
spec's ``policy.params`` are kept for the entry that names the spec's own policy and dropped
for the others (``beta`` means nothing to ``ei``); the rest of ``policy`` (``n_initial``,
``fit_iterations``, ``window`` …) is kept for all, except that a DKL spec's ``warm_start``
is switched off for the entries that do not run on the DKL (so ``dkl:ei`` with warm starts
runs beside ``ei`` and ``random`` in one study).

Seed ``k`` (0 … N-1) runs the campaign with ``seed = spec.seed + k``. The sample is built
from the campaign seed, so for a synthetic sample (``synthetic_film``) every seed is a new
film *and* a new initial design and noise; for a ``dataset`` sample the data are fixed and
only the initial design, noise and model seeds change.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coscope.config import CampaignSpec, PolicySpec, parse_spec
from coscope.errors import ConfigError
from coscope.studies.study import StudyPlan, base_job_spec, check_out, grid_pixels

_COST = {"dkl": 0, "gp": 1}  # heavier campaigns first, so the workers finish together
_BASELINES = ("random", "raster")


def parse_policy(entry: str) -> dict[str, str]:
    """``"dkl:ei"`` -> ``{"model": "dkl", "name": "ei"}``; ``"ei"`` -> model ``gp``."""
    model, _, name = entry.strip().rpartition(":")
    return {"model": model or "gp", "name": name}


def policy_entry(policy: PolicySpec) -> str:
    """The ``--policies`` entry of a spec's own policy (``ei``, ``dkl:ei``, ``structured:ei``)."""
    return policy.name if policy.model == "gp" else f"{policy.model}:{policy.name}"


def slug(entry: str) -> str:
    """A folder name for a policy entry (``dkl:ei`` -> ``dkl-ei``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", entry.strip())


def policy_spec(spec: CampaignSpec, entry: str) -> dict[str, Any]:
    """The ``policy`` section of the campaign for one entry (validated by the caller)."""
    wanted = parse_policy(entry)
    policy = spec.policy.model_dump()
    if wanted["name"] != spec.policy.name:
        policy["params"] = {}
    policy.update(wanted)
    if policy["model"] != "dkl":  # DKL-only switches mean nothing to the GP baselines
        policy["warm_start"] = False
    if policy["model"] != "structured":  # the law of the mean is the structured GP's own
        policy["mean"] = None
    if policy["name"] != "hypotheses":  # the competing models are the hypotheses policy's
        policy["models"] = None
    return policy


def _validate(spec_data: dict[str, Any], entry: str) -> CampaignSpec:
    try:
        return parse_spec(spec_data)
    except ConfigError as exc:
        detail = str(exc).removeprefix("invalid campaign spec: ").rstrip(".")
        raise ConfigError(
            f"--policies entry '{entry}' is not a valid policy ({detail}); use "
            "[gp:|dkl:|structured:]NAME with NAME one of ei, ucb, maxvar, random, raster, "
            "thompson (dkl only)."
        ) from None


def plan_benchmark(
    spec: CampaignSpec, *, seeds: int, policies: list[str], out: Path, workers: int = 2
) -> StudyPlan:
    """Validate the request and build every campaign's job; writes nothing.

    Raises:
        ConfigError: ``seeds < 1``, no or repeated policies, an invalid policy entry, a spec
            that does not fit its sample, or an ``out`` folder that is not empty.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}.")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    policies = [p.strip() for p in policies if p.strip()]
    if not policies:
        raise ConfigError("--policies is empty; give a comma-separated list such as ei,random.")
    if len(set(policies)) != len(policies):
        raise ConfigError(f"--policies lists an entry twice ({','.join(policies)}); drop one.")
    check_out(out)
    n_pixels = grid_pixels(spec)
    jobs = []
    for entry in policies:
        for k in range(seeds):
            run_dir = out / "runs" / slug(entry) / f"seed-{k}"
            data = base_job_spec(spec, run_dir, seed=spec.seed + k, policy=policy_spec(spec, entry))
            _validate(data, entry)
            jobs.append({"keys": {"policy": entry, "seed": k}, "spec": data})
    jobs.sort(
        key=lambda j: (
            _COST.get(j["spec"]["policy"]["model"], 1)
            + 2 * (j["spec"]["policy"]["name"] in _BASELINES)
        )
    )
    sample_note = (
        "The box and its instrument are the same for every seed; the random points and the "
        "optimiser's raw samples change."
        if spec.sample.box is not None
        else "The sample is re-drawn per seed (synthetic sample seeded by the campaign seed)."
        if spec.sample.kind != "dataset"
        else "The sample (a dataset) is the same for every seed."
    )
    return StudyPlan(
        kind="benchmark",
        spec=spec,
        jobs=jobs,
        key_names=("policy", "seed"),
        group_key="policy",
        out=out,
        workers=workers,
        params={
            "spec": spec.to_json_dict(),
            "seeds": seeds,
            "policies": ",".join(policies),
            "campaign_seeds": f"{spec.seed}..{spec.seed + seeds - 1}",
        },
        n_pixels=n_pixels,
        notes=(
            f"{seeds} seeds (campaign seeds {spec.seed}..{spec.seed + seeds - 1}) x policies "
            f"{', '.join(policies)}. {sample_note}",
        ),
    )
