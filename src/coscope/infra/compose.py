"""The composition root: the one place that turns a spec (or a trace) into wired parts.

Everything else receives its collaborators; nothing opens a client at import.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coscope.agents import Hypothesis, HypothesisAgent, StructuredGPAgent, make_agent
from coscope.agents.protocols import Agent
from coscope.campaign.context import CampaignContext, scalar_target
from coscope.campaign.feasible import constraints_of
from coscope.campaign.front import objectives_of
from coscope.campaign.probe import check_before_run
from coscope.campaign.tracker import Tracker
from coscope.catalog import CHOOSER_POLICIES, MULTI_OBJECTIVE_POLICIES
from coscope.config import CampaignSpec, InstrumentSpec, SampleSpec, parse_spec
from coscope.errors import ConfigError, StoreError
from coscope.infra.tracking import MlflowTracker, NullTracker, local_artifact_root, run_tags
from coscope.instruments import (
    Dwells,
    Instrument,
    MeasuresPoints,
    Sample,
    SyntheticFunction,
    build_base,
    build_instrument,
    build_sample,
)
from coscope.scalarizers import scalarize
from coscope.spaces import Box, PixelGrid, Space, layout_features, space_of
from coscope.storage import TraceStore
from coscope.types import Intervention, Location

# Spec fields a re-run on an existing store may change without starting a new campaign.
_MUTABLE_ON_RESUME = {
    "budget",
    "time_scale",
    "dask_address",
    "dask_workers",
    "tracking_uri",
    "store",
    "run_dir",
    "queue_depth",
    "approval",
}


def sample_from_spec(spec: SampleSpec | dict[str, Any], seed: int) -> Sample:
    """Build the campaign's sample (deterministic in ``seed``)."""
    sample_spec = spec if isinstance(spec, SampleSpec) else SampleSpec.model_validate(spec)
    try:
        return build_sample(sample_spec.kind, dict(sample_spec.params), seed)
    except ConfigError as exc:
        raise ConfigError(f"invalid campaign spec: 'sample.params': {exc}") from None


def space_from_spec(spec: SampleSpec | dict[str, Any], sample: Sample) -> Space:
    """The campaign's candidate space: the sample's table, its masked pixels, or every pixel.

    Built once per process from the spec and the sample (deterministic), so the campaign,
    replay, retrace, status and studies all see the same space (``docs/spaces.md``).
    """
    sample_spec = spec if isinstance(spec, SampleSpec) else SampleSpec.model_validate(spec)
    mask = sample_spec.mask.model_dump() if sample_spec.mask is not None else None
    box = sample_spec.box.model_dump() if sample_spec.box is not None else None
    try:
        return space_of(
            sample.shape, sample.pixel_size_um, mask=mask, table=sample.features, box=box
        )
    except ConfigError as exc:
        where = "sample.box" if box is not None else "sample.mask"
        raise ConfigError(f"invalid campaign spec: '{where}': {exc}") from None


def _instrument(
    inst: InstrumentSpec, sample: Sample, space: Space, time_scale: float
) -> Instrument:
    """The instrument stack one :class:`InstrumentSpec` describes, on ``sample``'s ``space``."""
    from coscope.instruments.faults import FaultPlan
    from coscope.instruments.resilience import RetryPolicy

    guarded = inst.timeout_s is not None or inst.retries > 0
    return build_instrument(
        inst.name,
        sample,
        kind=inst.kind,
        modalities=inst.modalities,
        latency_s=inst.latency_s,
        cost=inst.cost,
        noise=inst.noise,
        time_scale=time_scale,
        options=inst.options,
        travel_cost_per_um=inst.travel_cost_per_um,
        faults=FaultPlan(**inst.faults.model_dump()) if inst.faults else None,
        retry=RetryPolicy(inst.timeout_s, inst.retries, inst.backoff_s) if guarded else None,
        space=space,
    )


def build_instrument_from_specs(
    sample_spec: dict[str, Any], instrument_spec: dict[str, Any], *, seed: int, time_scale: float
) -> Instrument:
    """Build one instrument stack from JSON specs (used inside Dask workers)."""
    inst = InstrumentSpec.model_validate(instrument_spec)
    sample = sample_from_spec(sample_spec, seed)
    return _instrument(inst, sample, space_from_spec(sample_spec, sample), time_scale)


def instruments_from_spec(spec: CampaignSpec, sample: Sample) -> dict[str, Instrument]:
    """All instruments of a spec, built in this process (local executor)."""
    space = space_from_spec(spec.sample, sample)
    return {
        inst.name: _instrument(inst, sample, space, spec.time_scale) for inst in spec.instruments
    }


def instrument_references(spec: CampaignSpec) -> dict[str, tuple[dict, dict]]:
    """Instrument name -> (sample spec, instrument spec) as JSON dicts, for Dask workers."""
    data = spec.to_json_dict()
    return {inst["name"]: (data["sample"], inst) for inst in data["instruments"]}


def check_spec_fits_sample(spec: CampaignSpec, sample: Sample, space: Space | None = None) -> None:
    """ConfigError when the spec asks for modalities or seed points the sample lacks.

    Seed points must be candidates of ``space`` (default: the spec's space of ``sample``).
    """
    for inst in spec.instruments:
        for modality in inst.modalities:
            if modality not in sample.modalities:
                raise ConfigError(
                    f"instruments '{inst.name}' modality '{modality}' is not offered by sample "
                    f"'{spec.sample.kind}'; use one of {', '.join(sorted(sample.modalities))}."
                )
    space = space if space is not None else space_from_spec(spec.sample, sample)
    if isinstance(space, Box):
        check_box_instruments(spec, sample, space)
    height, width = sample.shape
    for row, col in spec.seed_points:
        if not (0 <= row < height and 0 <= col < width):
            raise ConfigError(
                f"seed_points entry ({row}, {col}) is off the sample: rows must be in "
                f"0..{height - 1} "
                f"and columns in 0..{width - 1}."
            )
        space.check(Location(row, col), "seed_points entry")
    check_before_run(spec, sample, space)  # scalarizers tried, instruments built and connected


def check_box_instruments(spec: CampaignSpec, sample: Sample, box: Box) -> None:
    """ConfigError unless every instrument of a box campaign measures points of its
    dimension (:class:`~coscope.instruments.base.MeasuresPoints`)."""
    for inst in spec.instruments:
        try:
            base = build_base(
                inst.name, sample, kind=inst.kind, modalities=inst.modalities, options=inst.options
            )
        except ConfigError as exc:
            raise ConfigError(
                f"instrument '{inst.name}' of kind '{inst.kind}' cannot measure points of a box "
                f"({str(exc).rstrip('.')}): use kind synthetic (or another kind that measures "
                "points)."
            ) from None
        if not isinstance(base, MeasuresPoints):
            raise ConfigError(
                f"instrument '{inst.name}' of kind '{inst.kind}' measures grid locations, not "
                "points of a box: use kind synthetic (or another kind that measures points)."
            )
        if base.point_dimension() != box.dim:
            raise ConfigError(
                f"instrument '{inst.name}' measures points of {base.point_dimension()} "
                f"dimensions but sample.box has {box.dim} ({', '.join(box.names)}): give the "
                "box one dimension per input of the instrument."
            )


def truth_map(spec: CampaignSpec, sample: Sample, space: Space | None = None) -> np.ndarray | None:
    """Ground-truth scalar target over the grid ``(H, W)``, or ``None`` when unknown.

    NaN at cells that are not candidates of ``space`` (default: the spec's space; off a
    mask): the metrics and maps judge a campaign over its candidates only.
    """
    modality = spec.scalarizer.modality
    signals = sample.truth.get(modality) if sample.truth else None
    if signals is None:
        return None
    axis = sample.info(modality).axis
    height, width, _ = signals.shape
    flat = signals.reshape(height * width, -1)
    name, params = spec.scalarizer.name, spec.scalarizer.params
    values = np.array([scalarize(name, s, axis, params) for s in flat], dtype=np.float64)
    space = space if space is not None else space_from_spec(spec.sample, sample)
    values[~space.allowed] = np.nan
    return values.reshape(height, width)


@dataclass(frozen=True)
class BoxTruth:
    """The noise-free target of a box campaign whose instrument is a synthetic function.

    Attributes:
        value: Points ``n x d`` (box units) -> the scalarized noise-free target ``(n,)``.
        maximum: The scalarized known maximum of the function (the scalarizer is assumed
            to increase with the value, as ``value_at`` does).
    """

    value: Callable[[np.ndarray], np.ndarray]
    maximum: float


def box_truth(spec: CampaignSpec, sample: Sample) -> BoxTruth | None:
    """The truth of a box campaign measured by a :class:`~coscope.instruments.
    SyntheticFunction` (the first instrument of the target modality), else ``None``."""
    modality = spec.scalarizer.modality
    inst = next(i for i in spec.instruments if modality in i.modalities)
    base = build_base(
        inst.name, sample, kind=inst.kind, modalities=inst.modalities, options=inst.options
    )
    if not isinstance(base, SyntheticFunction):
        return None
    axis = sample.info(modality).axis
    name, params = spec.scalarizer.name, spec.scalarizer.params

    def value(points: np.ndarray) -> np.ndarray:
        raw = base.truth(points)
        return np.array([scalarize(name, np.array([v]), axis, params) for v in raw])

    maximum = float(scalarize(name, np.array([base.function.maximum]), axis, params))
    return BoxTruth(value, maximum)


def agent_from_spec(
    spec: CampaignSpec,
    sample: Sample,
    space: Space | None = None,
    *,
    reward: Callable[[np.ndarray], float] | None = None,
) -> Agent:
    """The agent the spec's policy names, over ``space`` (default: the spec's space); a grid
    agent learns :func:`scalar_target` (the spec's scalarizer, or ``reward`` instead: vote
    similarity)."""
    policy = spec.policy
    from coscope.agents.chooser_spec import chooser_from_spec

    space = space if space is not None else space_from_spec(spec.sample, sample)
    if isinstance(space, Box):
        return box_agent_from_spec(spec, sample, space, reward)
    pixel_only = policy.name in CHOOSER_POLICIES or policy.name == "conavigate"
    if pixel_only and space.kind != PixelGrid.kind:
        raise ConfigError(
            f"policy '{policy.name}' explores every pixel of a grid, not a {space.kind} space: "
            "drop sample.mask or use a single-modality policy (ei, ucb, maxvar …)."
        )
    if policy.name in CHOOSER_POLICIES:
        return chooser_from_spec(spec, sample)
    common: dict[str, Any] = {
        "scalar_target": scalar_target(spec, sample, reward),
        "policy_params": dict(policy.params),
        "seed": spec.seed,
        "n_initial": policy.n_initial,
        "seed_points": [Location(r, c) for r, c in spec.seed_points],
        "refit_every": policy.refit_every,
        "fit_iterations": policy.fit_iterations,
    }
    objectives = objectives_of(spec, lambda m: sample.info(m).axis)
    if objectives is not None and policy.name in MULTI_OBJECTIVE_POLICIES:
        from coscope.agents.hypervolume_agent import HypervolumeAgent  # botorch MO, on use
        from coscope.agents.novelty_agent import NoveltyAgent

        common.pop("scalar_target")  # the first objective
        kind = NoveltyAgent if policy.name == NoveltyAgent.policy_name else HypervolumeAgent
        return kind(space, objectives=objectives, **common)
    if policy.name == "conavigate":
        from coscope.agents.conavigation_spec import conavigation_agent

        return conavigation_agent(spec, sample)
    if policy.model == "dkl":
        from coscope.agents.dkl_agent import DKLAgent
        from coscope.models.dkl_config import DKLConfig
        from coscope.models.patches import PatchGrid

        if sample.features and policy.extractor == "cnn":
            raise ConfigError(
                "policy.extractor 'cnn' needs structure patches, but a table's candidates are "
                "feature vectors: use extractor: mlp."
            )
        features: Any = (
            layout_features(space)  # a table: the DKL learns on its feature columns
            if sample.features
            else PatchGrid(sample.structure, policy.window, policy.patch_scaling)  # on demand
        )
        config = DKLConfig(
            latent_dim=policy.latent_dim,
            extractor=policy.extractor,
            hidden=tuple(policy.hidden),
            activation=policy.activation,
            channels=1 if sample.structure.ndim == 2 else int(sample.structure.shape[0]),
            restarts=policy.restarts,
            select=policy.select,
        )
        return DKLAgent(
            space,
            features=features,
            policy=policy.name,
            config=config,
            warm_start=policy.warm_start,
            cold_every=policy.cold_every,
            warm_iterations=policy.warm_iterations,
            **common,
        )
    if policy.name == "hypotheses" and policy.models is not None:
        return HypothesisAgent(
            space,
            hypotheses=[Hypothesis(m.label, m.law, m.priors) for m in policy.models],
            **common,
        )
    if policy.name == "fidelity":
        from coscope.agents.fidelity_agent import FidelityAgent  # botorch, on use

        return FidelityAgent(space, dwells=dwells_of(spec, sample, space), **common)
    if spec.constraints or spec.feasibility == "learn":
        from coscope.agents.constrained_agent import ConstrainedAgent  # botorch, on use

        return ConstrainedAgent(
            space,
            constraints=constraints_of(spec, lambda m: sample.info(m).axis),
            learn_feasibility=spec.feasibility == "learn",
            min_p_feasible=spec.min_p_feasible,
            **common,
        )
    if policy.model == "structured" and policy.mean is not None:
        return StructuredGPAgent(
            space, policy=policy.name, law=policy.mean.law, priors=policy.mean.priors, **common
        )
    return make_agent(policy.name, space, **common)


def dwells_of(spec: CampaignSpec, sample: Sample, space: Space) -> dict[str, tuple[float, ...]]:
    """Instrument name -> relative dwell times offered, for the instruments that
    :class:`~coscope.instruments.base.Dwells` (``docs/fidelity.md``).

    Raises:
        ConfigError: No instrument of the target modality offers dwell times.
    """
    out: dict[str, tuple[float, ...]] = {}
    for inst in spec.instruments:
        base = build_base(
            inst.name,
            sample,
            kind=inst.kind,
            modalities=inst.modalities,
            options=inst.options,
            space=space,
        )
        if isinstance(base, Dwells) and spec.scalarizer.modality in base.modalities:
            out[inst.name] = base.dwells()
    if not out:
        raise ConfigError(
            f"policy 'fidelity' needs an instrument of modality '{spec.scalarizer.modality}' "
            "that offers dwell times: add options: {dwell: [0.25, 1.0, 4.0]} to it."
        )
    return out


def box_agent_from_spec(
    spec: CampaignSpec,
    sample: Sample,
    box: Box,
    reward: Callable[[np.ndarray], float] | None = None,
) -> Agent:
    """The :class:`~coscope.agents.box_agent.BoxAgent` of a box campaign."""
    from coscope.agents.box_agent import BoxAgent  # botorch's optimiser: only for a box

    policy = spec.policy
    box_spec = spec.sample.box
    seeds = [
        box.point_of(p, f"sample.box.seed_points[{i}]")
        for i, p in enumerate(box_spec.seed_points if box_spec is not None else [])
    ]
    return BoxAgent(
        box,
        policy=policy.name,
        policy_params=dict(policy.params),
        seed=spec.seed,
        n_initial=policy.n_initial,
        seed_points=seeds,
        refit_every=policy.refit_every,
        fit_iterations=policy.fit_iterations,
        scalar_target=scalar_target(spec, sample, reward),
    )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(
        k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in _MUTABLE_ON_RESUME
    )


def create_or_open_store(spec: CampaignSpec, sample: Sample) -> tuple[TraceStore, bool]:
    """Create the campaign's trace, or open it when it exists for the same campaign.

    Returns:
        ``(store, resumed)``.

    Raises:
        ConfigError: The store holds a different campaign (names the differing fields).
    """
    from coscope.campaign.auth import ensure_token, os_user

    path = spec.resolved_store()
    if (path / "zarr.json").exists():
        store = TraceStore.open(path, mode="a")
        ensure_token(path)  # a store from before tokens: its owner gets one now
        old, new = normalised_campaign(effective_campaign(store)), spec.to_json_dict()
        diff = _differences(old, new)
        if diff:
            store.close()
            raise ConfigError(
                f"the store '{path}' holds a different campaign (fields {', '.join(diff)} differ); "
                "use another store path or `coscope resume` to continue the stored one."
            )
        changed = {k: new[k] for k in new if old.get(k) != new[k]}
        if changed:
            overrides = {**store.get_attr("overrides", {}), **changed}
            store.set_attr("overrides", overrides)
            store.append_intervention(
                Intervention(
                    kind="spec",
                    payload=changed,
                    step=store.counts()["decisions"],
                    who=os_user(),
                    why="campaign re-run with changed settings",
                    t=time.time(),
                )
            )
        return store, True
    path.parent.mkdir(parents=True, exist_ok=True)
    space = space_from_spec(spec.sample, sample)  # before creating: a bad mask writes nothing
    store = TraceStore.create(
        path,
        campaign=spec.to_json_dict(),
        modalities=dict(sample.modalities),
        sample_shape=sample.shape,
    )
    store.set_attr("space", space.describe())
    return store, False  # owner-only, with its token (TraceStore.create)


def normalised_campaign(campaign: dict[str, Any]) -> dict[str, Any]:
    """A stored spec with the defaults of fields added since it was written (as stored if
    it no longer parses: it then differs and the caller says so)."""
    try:
        return parse_spec(campaign).to_json_dict()
    except ConfigError:
        return campaign


def effective_campaign(store: TraceStore) -> dict[str, Any]:
    """The stored campaign spec with the settings changed on later runs (``overrides``)."""
    return store.effective_campaign()


def spec_of_store(path: str | Path) -> CampaignSpec:
    """The campaign spec stored in a trace (for ``coscope resume``)."""
    store = TraceStore.open(path, mode="r")
    try:
        return parse_spec(effective_campaign(store))
    except ConfigError as exc:
        raise StoreError(
            f"the trace at '{path}' holds an invalid spec ({exc}); it cannot be resumed."
        ) from None


def open_context(
    store_path: str | Path, *, track: bool = True, metrics_every: int | None = None
) -> tuple[CampaignContext, Sample]:
    """Wire a campaign from its trace: the spec stored there names everything else."""
    store = TraceStore.open(store_path, mode="a")
    spec = parse_spec(effective_campaign(store))
    sample = sample_from_spec(spec.sample, spec.seed)
    tracker: Tracker = NullTracker()
    if track:
        run_dir = spec.resolved_run_dir()
        uri = spec.resolved_tracking_uri()
        tracker = MlflowTracker(
            uri,
            spec.name,
            local_artifact_root(uri, run_dir),
            tags=run_tags(spec.name, store.path),
        )
        try:
            run_id = tracker.start(
                spec.to_json_dict(), run_id=store.get_attr("mlflow_run_id", None)
            )
        except Exception as exc:  # any client or server failure means the same to the user
            store.close()
            raise ConfigError(
                f"cannot use the MLflow tracking URI '{uri}' ({type(exc).__name__}); start that "
                "server or drop tracking_uri from the spec to track in the run folder."
            ) from None
        store.set_attr("mlflow_run_id", run_id)
    n_pixels = sample.shape[0] * sample.shape[1]
    space = space_from_spec(spec.sample, sample)
    ctx = CampaignContext(
        spec=spec,
        sample=sample,
        store=store,
        agent=agent_from_spec(spec, sample, space),
        tracker=tracker,
        truth_map=truth_map(spec, sample, space),
        space=space,
        metrics_every=metrics_every or spec.metrics_every or (1 if n_pixels <= 10_000 else 10),
    )
    return ctx, sample


def mark_running(store: TraceStore) -> None:
    """Record which process runs the campaign (``coscope status`` tells if it is alive)."""
    store.set_attr("status", "running")
    store.set_attr("runner", {"pid": os.getpid(), "host": socket.gethostname()})
