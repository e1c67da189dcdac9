"""The one agent contract, the plain data it trades in, and its optional abilities.

Every agent — GP, DKL, Thompson, random, raster, multi-task, latent multi-task,
co-navigation — implements :class:`Agent` (in the spirit of Bluesky-adaptive's
ingest/suggest/report and Ax's ask/tell):

* it is **told** measurements, full signals, in step order (:meth:`Agent.ingest_measurements`);
  telling the same step twice is a no-op, so resume, replay and the live loop all feed it the
  same way;
* it is **asked** for one proposal for an idle instrument with one plain-data argument, an
  :class:`Ask`: the step, the instrument, the modalities it offers, every proposal still in
  flight (pending points of every instrument) and the campaign's price function;
* it **reports** its maps (:class:`AgentReport`).

A grid agent that learns one scalar target is built with that target, a :class:`ScalarTarget`
(the modality and its ``signal -> float``): re-scalarising a campaign (steering, votes,
counterfactuals) builds the agent again with another target. No branch in the loop.

Optional abilities are small ``runtime_checkable`` protocols an agent class declares by
implementing them (:class:`FitsOnExecutor`, :class:`HandsOverFits`, …). They are checked once,
where the agent is built (:func:`abilities_of` → :class:`AgentAbilities`, kept on the
campaign context); loop, replay, report and flows use the resolved abilities, never probes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from coscope.instruments.pricing import PriceFunction
from coscope.pareto import default_ref_point
from coscope.scalarizers import scalarize
from coscope.types import FitRecord, Location, Measurement, Observation, Proposal

if TYPE_CHECKING:  # typing only: the twin and executor modules load torch / Prefect
    from coscope.twin.artefact import DigitalTwin


@dataclass(frozen=True, eq=False)
class AgentReport:
    """What the agent believes now (plain data).

    Attributes:
        mean: Posterior mean of the target over the grid, ``(H, W)``; NaN without a model.
        std: Posterior standard deviation, ``(H, W)``; NaN without a model.
        model_version: Version of the model used (``-1`` if none).
        n_observations: Target observations ingested.
        best_value: Best observed target value (NaN if none).
        best_location: Where it was observed (earliest step on ties; None if none).
        last_fit: Record of the model used (None if none).
    """

    mean: np.ndarray
    std: np.ndarray
    model_version: int
    n_observations: int
    best_value: float
    best_location: Location | None
    last_fit: FitRecord | None


@dataclass(frozen=True)
class Ask:
    """One question to an agent: what should ``instrument`` measure next?

    Attributes:
        step: Decision index the proposal must carry.
        instrument: The idle instrument.
        offered: Modalities of ``instrument`` the agent learns from, in spec order.
        pending: Proposals decided but not yet measured, on every instrument.
        price: Expected cost of a ``(instrument, modality, location)``.
    """

    step: int
    instrument: str
    offered: tuple[str, ...]
    pending: tuple[Proposal, ...]
    price: PriceFunction


@dataclass(frozen=True)
class Reducer:
    """How one modality's signal becomes a scalar: scalarizer ``name``, ``params``, ``axis``."""

    name: str
    params: Mapping[str, float]
    axis: np.ndarray

    def __call__(self, signal: np.ndarray) -> float:
        return float(scalarize(self.name, signal, self.axis, dict(self.params)))


class Scalarized(Protocol):
    """A spec's scalar of one modality (an objective, a constraint): scalarizer and params."""

    @property
    def modality(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


def reducers_of(
    items: Sequence[Scalarized], axis_of: Callable[[str], np.ndarray]
) -> tuple[str, tuple[str, ...], tuple[Reducer, ...]]:
    """``(modality, names, reducers)`` of scalars that share the first one's modality;
    ``axis_of`` gives a modality's signal axis (the sample's, or the trace's)."""
    modality = items[0].modality
    axis = axis_of(modality)
    names = tuple(item.name for item in items)
    return modality, names, tuple(Reducer(i.name, dict(i.params), axis) for i in items)


@dataclass(frozen=True)
class ScalarTarget:
    """The one number a single-target agent learns.

    Attributes:
        modality: The target modality; measurements of other modalities are ignored.
        value: ``signal (L,) -> float``: the scalarizer (a :class:`Reducer`) or a reward
            such as similarity to a vote target.
    """

    modality: str
    value: Callable[[np.ndarray], float]

    def observe(self, measurement: Measurement) -> Observation:
        """The observation of a measurement of :attr:`modality`."""
        value = float(self.value(measurement.signal))
        return Observation(measurement.step, measurement.modality, measurement.location, value)


@dataclass(frozen=True)
class Objectives:
    """The several numbers a multi-objective campaign optimises, all of one modality.

    Attributes:
        modality: The modality every objective is a scalar of.
        names: Objective names (the scalarizers'), in spec order, ``m`` of them.
        values: ``signal (L,) -> float`` per objective (:class:`Reducer` s).
        signs: ``+1`` (maximised) or ``-1`` (minimised) per objective.
        ref_points: Reference value per objective in its own units, ``None``: the default
            (:func:`coscope.pareto.default_ref_point`).
    """

    modality: str
    names: tuple[str, ...]
    values: tuple[Callable[[np.ndarray], float], ...]
    signs: tuple[float, ...]
    ref_points: tuple[float | None, ...]

    def of(self, signal: np.ndarray) -> np.ndarray:
        """Objective values of one signal, ``(m,)``, in objective units."""
        return np.array([float(f(signal)) for f in self.values], dtype=np.float64)

    def maximised(self, Y: np.ndarray) -> np.ndarray:
        """``Y`` (``n x m``, objective units) in the maximisation convention."""
        return np.asarray(Y, dtype=np.float64) * np.asarray(self.signs)

    def ref_point(self, Y: np.ndarray) -> np.ndarray:
        """``(m,)`` reference point, maximisation convention, for observed ``Y`` (``n x m``,
        objective units, ``n >= 1``): the given ones, else the default rule."""
        pairs = zip(self.ref_points, self.signs, strict=True)
        given = [None if r is None else r * s for r, s in pairs]
        return default_ref_point(self.maximised(Y), given)


@dataclass(frozen=True)
class OutcomeConstraints:
    """Scalars of the target modality that must stay within bounds (``constraints:``).

    Attributes:
        modality: The modality every constraint is a scalar of (the target's).
        names: Constraint names (the scalarizers'), in spec order, ``k`` of them.
        values: ``signal (L,) -> float`` per constraint (:class:`Reducer` s).
        lower: Lower bound per constraint in its units (``op: ">="``), else ``None``.
        upper: Upper bound per constraint in its units (``op: "<="``), else ``None``.
    """

    modality: str
    names: tuple[str, ...]
    values: tuple[Callable[[np.ndarray], float], ...]
    lower: tuple[float | None, ...]
    upper: tuple[float | None, ...]

    def of(self, signal: np.ndarray) -> np.ndarray:
        """Constraint values of one signal, ``(k,)``, in their units."""
        return np.array([float(f(signal)) for f in self.values], dtype=np.float64)

    def holds(self, C: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: which rows of ``C`` (``n x k`` constraint values) satisfy all."""
        C = np.asarray(C, dtype=np.float64).reshape(-1, len(self.names))
        ok = np.ones(C.shape[0], dtype=bool)
        for j, (lo, hi) in enumerate(zip(self.lower, self.upper, strict=True)):
            if lo is not None:
                ok &= C[:, j] >= lo
            if hi is not None:
                ok &= C[:, j] <= hi
        return ok


@runtime_checkable
class Agent(Protocol):
    """What the campaign loop, replay and the reports ask of every agent."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities it learns from and may propose (the target modality among them)."""
        ...

    @property
    def n_observations(self) -> int:
        """Measurements it has learned from (a single-target agent: of its target)."""
        ...

    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Learn from measurements (full signals); a step told twice is a no-op."""
        ...

    def propose(self, ask: Ask) -> Proposal | None:
        """The next measurement for ``ask.instrument``, or ``None`` when nothing is worth doing.

        Returns:
            A proposal with ``ask.step``, ``ask.instrument``, one of ``ask.offered``, a finite
            ``expected_cost`` (``ask.price`` of it), never at a pending or excluded location.
        """
        ...

    def report(self) -> AgentReport:
        """Mean and std maps of the target over the grid (fits first if due)."""
        ...


# ---------------------------------------------------------------------- optional abilities
@runtime_checkable
class FitsOnExecutor(Protocol):
    """Fits its surrogate on the loop's executor (a Dask worker) when due."""

    model_kind: str

    def needs_fit(self, step: int) -> bool: ...

    def training_data(self) -> tuple[np.ndarray, np.ndarray]: ...

    def fit_seed(self) -> int: ...

    def fit_options(self) -> dict[str, Any]: ...

    def load_fit(self, state: Any, version: int, step: int | None = None) -> FitRecord: ...


@runtime_checkable
class HandsOverFits(Protocol):
    """Fits surrogates itself (in-process, background) and hands the records over."""

    def take_fits(self) -> list[FitRecord]: ...


@runtime_checkable
class UsesExecutor(Protocol):
    """Runs its own fits through the loop's executor (``executor.fit``)."""

    def use_executor(self, executor: Any) -> None: ...


@runtime_checkable
class HasEmbedding(Protocol):
    """Has a learned latent space of the candidates (DKL)."""

    def embedding(self) -> np.ndarray | None:
        """Latent coordinates of every candidate, ``N x d``; ``None`` before a fit."""
        ...


@runtime_checkable
class RemembersParams(Protocol):
    """Needs the request ``params`` of decisions (theory parameters, fidelity)."""

    def remember_params(self, step: int, params: Mapping[str, Any]) -> None: ...


@runtime_checkable
class HasDigitalTwin(Protocol):
    """Calibrates theory against experiment into a digital twin (co-navigation)."""

    experiments: Mapping[int, tuple[Location, np.ndarray]]
    """Step -> (location, measured signal) of the experiments it learned from."""

    def digital_twin(self) -> DigitalTwin | None: ...


@runtime_checkable
class ReportsTasks(Protocol):
    """Learns several modalities at once: per-modality maps and the task covariance."""

    reducers: Mapping[str, Callable[[np.ndarray], float]]

    def predict(self, modality: str) -> tuple[np.ndarray, np.ndarray]: ...

    def task_covariance(self) -> np.ndarray | None: ...


@runtime_checkable
class Steerable(Protocol):
    """Honours steering's exclusions (``blocked``) and must-measure points on a grid."""

    grid_shape: tuple[int, int]
    blocked: np.ndarray
    """``(H*W,)`` bool: pixels never to propose."""
    seed_points: tuple[Location, ...]


@runtime_checkable
class HasPolicy(Protocol):
    """Scores every candidate with a named acquisition policy (retrace's maps)."""

    policy_name: str
    policy_params: dict[str, Any]
    model_kind: str

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray: ...


@runtime_checkable
class Retraceable(Protocol):
    """A grid agent whose final surrogate can be conditioned on earlier data (retrace)."""

    blocked: np.ndarray
    """``(H*W,)`` bool: pixels steering excludes."""
    outside: np.ndarray
    """``(H*W,)`` bool: layout cells that are not candidates of the space."""

    def final_surrogate(self, step: int) -> tuple[Any, list[int]] | None:
        """The surrogate state serving the data now and the steps of its training rows."""
        ...

    def condition_on(self, state: Any) -> None:
        """Predict and score with ``state`` (a restriction of the final one)."""
        ...

    def predict_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(H*W,)`` of the loaded surrogate at every candidate."""
        ...


@runtime_checkable
class PredictsPoints(Protocol):
    """Learns on points of a continuous box (:mod:`coscope.agents.box_agent`): its
    points and its predictions anywhere in the box (the report's maps and slices)."""

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``(n,)`` and points ``n x d`` (box units) of every decision it knows."""
        ...

    def predict_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std ``(n,)`` at ``points`` (``n x d``); NaN without a model."""
        ...


@runtime_checkable
class WeighsHypotheses(Protocol):
    """Weighs competing hypotheses by their evidence (policy ``hypotheses``)."""

    def hypothesis_metrics(self) -> dict[str, float]:
        """``hypothesis.<name>.prob`` and ``.elpd`` of the data known now (fits if due)."""
        ...

    def verdict(self) -> dict[str, Any] | None:
        """The leading hypothesis and every hypothesis' probability; None before a fit."""
        ...


@runtime_checkable
class Constrained(Protocol):
    """Weights its acquisition by a probability of feasibility (docs/constraints.md): of
    outcome constraints, and of decisions learned infeasible because their measurement failed."""

    def mark_infeasible(self, step: int, location: Location) -> None:
        """Decision ``step`` at ``location`` failed and was retired: learn it as infeasible."""
        ...

    def decision_feasibility(self, step: int) -> dict[str, float]:
        """``p_feasible`` (and ``p_<constraint>``, ``p_measurable``) of decision ``step``'s
        point when it was chosen; empty for a seed or random pick. Asked once per step."""
        ...


@runtime_checkable
class Closable(Protocol):
    """Holds a resource (a background thread) to release at the end."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class AgentAbilities:
    """The optional abilities of one agent, resolved once where it is built.

    Each field is the agent itself, typed as the ability, or ``None`` without it.
    """

    fits_on_executor: FitsOnExecutor | None = None
    hands_over_fits: HandsOverFits | None = None
    uses_executor: UsesExecutor | None = None
    embedding: HasEmbedding | None = None
    remembers_params: RemembersParams | None = None
    digital_twin: HasDigitalTwin | None = None
    tasks: ReportsTasks | None = None
    steerable: Steerable | None = None
    policy: HasPolicy | None = None
    retraceable: Retraceable | None = None
    single_target: LearnsOneTarget | None = None
    """It learns one scalar of one modality (what replay and retrace follow)."""
    points: PredictsPoints | None = None
    """It learns on points of a continuous box."""
    hypotheses: WeighsHypotheses | None = None
    """It weighs competing hypotheses (the verdict in metrics, status and the report)."""
    constrained: Constrained | None = None
    """It honours outcome constraints or learns feasibility."""


def abilities_of(agent: Agent) -> AgentAbilities:
    """Check ``agent`` against every ability protocol, once.

    Raises:
        TypeError: ``agent`` does not implement :class:`Agent`.
    """
    if not isinstance(agent, Agent):
        raise TypeError(f"{type(agent).__name__} does not implement the Agent protocol.")
    return AgentAbilities(
        fits_on_executor=agent if isinstance(agent, FitsOnExecutor) else None,
        hands_over_fits=agent if isinstance(agent, HandsOverFits) else None,
        uses_executor=agent if isinstance(agent, UsesExecutor) else None,
        embedding=agent if isinstance(agent, HasEmbedding) else None,
        remembers_params=agent if isinstance(agent, RemembersParams) else None,
        digital_twin=agent if isinstance(agent, HasDigitalTwin) else None,
        tasks=agent if isinstance(agent, ReportsTasks) else None,
        steerable=agent if isinstance(agent, Steerable) else None,
        policy=agent if isinstance(agent, HasPolicy) else None,
        retraceable=agent if isinstance(agent, Retraceable) else None,
        single_target=agent if isinstance(agent, LearnsOneTarget) else None,
        points=agent if isinstance(agent, PredictsPoints) else None,
        hypotheses=agent if isinstance(agent, WeighsHypotheses) else None,
        constrained=agent if isinstance(agent, Constrained) else None,
    )


@runtime_checkable
class LearnsOneTarget(Protocol):
    """A grid agent built with its :class:`ScalarTarget`."""

    scalar_target: ScalarTarget
