"""Everything one campaign run needs, wired once by the composition root (``infra.compose``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coscope.agents.protocols import (
    Agent,
    AgentAbilities,
    Reducer,
    ScalarTarget,
    abilities_of,
)
from coscope.campaign.failures import FailureBook
from coscope.campaign.front import FrontBook, objectives_of
from coscope.campaign.pricing import CampaignPrices
from coscope.campaign.tracker import Tracker
from coscope.config import CampaignSpec
from coscope.instruments import Pricing, Sample
from coscope.spaces import Space
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, Observation


def scalar_target(
    spec: CampaignSpec, sample: Sample, reward: Callable[[np.ndarray], float] | None = None
) -> ScalarTarget:
    """The campaign's target: the spec's scalarizer on its modality, or ``reward`` instead
    (vote similarity, set by steering, :mod:`coscope.campaign.adopt`)."""
    scal = spec.scalarizer
    value = reward or Reducer(scal.name, dict(scal.params), sample.info(scal.modality).axis)
    return ScalarTarget(scal.modality, value)


@dataclass
class CampaignContext:
    """The wired parts of a campaign.

    Attributes:
        spec: The validated campaign spec.
        sample: The sample (its grid, structure image, and ground truth when known).
        store: The experimental trace, open for appending.
        agent: The decision maker (:class:`~coscope.agents.protocols.Agent`).
        tracker: MLflow (or null) tracker.
        abilities: The agent's optional abilities, resolved when it is set (never probed).
        truth_map: Ground-truth scalar target over the grid, ``(H, W)``, or ``None``; NaN
            at cells that are not candidates of the space.
        space: The campaign's candidate space (``docs/spaces.md``; None: every pixel).
        on_measurement: Called with each history row (progress display), or ``None``.
        on_checkpoint: Called with the model version after each checkpoint fit (every
            ``spec.checkpoint_every``-th, the agent holding it), or ``None``.
        metrics_every: Compute prediction error against ground truth every this many
            measurements (it costs one prediction over the whole grid).
        reward: ``signal -> float`` replacing the scalarizer (vote similarity, set by
            steering, :mod:`coscope.campaign.adopt`), or ``None``.
    """

    spec: CampaignSpec
    sample: Sample
    store: TraceStore
    agent: Agent
    tracker: Tracker
    truth_map: np.ndarray | None = None
    space: Space | None = None
    on_measurement: Callable[[dict[str, float]], None] | None = None
    on_checkpoint: Callable[[int], None] | None = None
    metrics_every: int = 1
    reward: Callable[[np.ndarray], float] | None = None
    _origins: dict[str, Location] = field(default_factory=dict, repr=False)
    _n_origins: int = field(default=-1, repr=False)
    _prices: CampaignPrices | None = field(default=None, repr=False)
    abilities: AgentAbilities = field(init=False, repr=False)
    front: FrontBook | None = field(init=False, repr=False)
    """The Pareto front of the measurements (``None`` for a single-objective campaign)."""

    def __post_init__(self) -> None:
        self.abilities = abilities_of(self.agent)
        objectives = objectives_of(self.spec, lambda m: self.sample.info(m).axis)
        self.front = FrontBook(objectives) if objectives is not None else None

    def front_metrics(self) -> dict[str, float]:
        """Hypervolume and Pareto-set size of the measurements known (empty for a
        single-objective campaign)."""
        return {} if self.front is None else self.front.metrics()

    def hypothesis_metrics(self) -> dict[str, float]:
        """Each hypothesis' probability and evidence now (empty unless the agent weighs
        hypotheses, docs/hypotheses.md)."""
        weighs = self.abilities.hypotheses
        return {} if weighs is None else weighs.hypothesis_metrics()

    def use_agent(self, agent: Agent) -> None:
        """Replace the agent (steering rebuilt it) and resolve its abilities once."""
        self.agent = agent
        self.abilities = abilities_of(agent)

    @property
    def target_modality(self) -> str:
        """The modality whose scalarized signal is the campaign's target."""
        return self.spec.scalarizer.modality

    @property
    def target(self) -> ScalarTarget:
        """The campaign's target under the current spec and reward (:func:`scalar_target`)."""
        return scalar_target(self.spec, self.sample, self.reward)

    def observe(self, measurement: Measurement) -> Observation:
        """Scalarize a measurement of the target modality into the campaign's target."""
        return self.target.observe(measurement)

    def feed_agent(self, measurements: list[Measurement]) -> list[Observation]:
        """Tell the agent stored ``measurements`` in step order; returns the target observations.

        An agent that remembers request params gets those of every stored decision first; a
        constrained one the decisions the failure policy retired (learned infeasible).
        """
        target = self.target
        observations = [target.observe(m) for m in measurements if m.modality == target.modality]
        remembers = self.abilities.remembers_params
        if remembers is not None:
            for decision in self.store.decisions():
                remembers.remember_params(decision.step, decision.params)
        constrained = self.abilities.constrained
        if constrained is not None:
            retired = FailureBook(self.spec.failures, self.store.interventions()).retired
            for decision in self.store.decisions():
                if decision.step in retired:
                    constrained.mark_infeasible(decision.step, decision.location)
        self.agent.ingest_measurements(sorted(measurements, key=lambda m: m.step))
        if self.front is not None:
            self.front.add(measurements)
        return observations

    def agent_modalities(self) -> tuple[str, ...]:
        """Modalities the agent learns from and proposes."""
        return tuple(self.agent.modalities)

    def offered_modalities(self, name: str) -> list[str]:
        """Modalities of instrument ``name`` that the agent proposes, in spec order."""
        wanted = self.agent_modalities()
        inst = next(i for i in self.spec.instruments if i.name == name)
        return [m for m in inst.modalities if m in wanted]

    def active_instruments(self) -> list[str]:
        """Instruments offering a modality the agent proposes, in spec order."""
        return [i.name for i in self.spec.instruments if self.offered_modalities(i.name)]

    def prices(self) -> CampaignPrices:
        """The price models of the spec's instruments under its current costs; rebuilt when
        :attr:`spec` is replaced (a ``costs`` intervention)."""
        if self._prices is None or self._prices.spec is not self.spec:
            bases = self._prices
            self._prices = CampaignPrices(self.spec, self.sample, self.space)
            if bases is not None:
                self._prices.adopt_bases(bases)
        return self._prices

    def reserved_cost(self, name: str) -> float:
        """What one more request on instrument ``name`` is reserved at when deciding ahead:
        the reference price of the target modality (:meth:`CampaignPrices.reference`)."""
        return self.prices().reference(name, self.target_modality)

    def cheapest_cost(self, name: str) -> float:
        """A lower bound of the price of any proposal for ``name``: no proposal of a modality
        the agent may propose there costs less (:meth:`Pricing.floor`; travel only adds)."""
        return self.prices().floor(name, self.offered_modalities(name))

    def pricing(self, instrument: str) -> Pricing:
        """The price model of ``instrument`` under the spec's current costs: the same
        :class:`~coscope.instruments.pricing.Pricing` its stack charges by."""
        return self.prices().pricing(instrument)

    def expected_cost(
        self,
        instrument: str,
        modality: str,
        location: Location,
        params: Mapping[str, Any] | None = None,
    ) -> float:
        """Price of measuring ``modality`` at ``location`` on ``instrument`` with ``params``.

        The :class:`~coscope.instruments.pricing.PriceFunction` handed to the agent (``Ask``):
        :meth:`pricing` of the request; without a ``stage_from`` in ``params`` the stage origin
        is the instrument's latest decision, read from the trace.
        """
        return self.prices().quote(
            instrument, modality, location, params, self._stage_origin(instrument)
        )

    def _stage_origin(self, instrument: str) -> Location | None:
        """Location of the instrument's latest decision (``None`` before its first, or when
        it charges no travel)."""
        if not self.pricing(instrument).travel_cost_per_um:
            return None
        count = self.store.counts()["decisions"]
        if count != self._n_origins:
            self._origins = {d.instrument: d.location for d in self.store.decisions()}
            self._n_origins = count
        return self._origins.get(instrument)

    def prediction_metrics(self, n_measured: int) -> dict[str, float]:
        """RMSE and MAE of the predicted map against ground truth, when known and due.

        Due after the 1st, ``1 + metrics_every``-th … measurement the campaign paid for
        (``n_measured``), so a resumed run computes them where the uninterrupted run did.
        """
        if self.truth_map is None or (n_measured - 1) % self.metrics_every:
            return {}
        report = self.agent.report()
        known = np.isfinite(self.truth_map)  # the candidates of the space
        error = (report.mean - self.truth_map)[known]
        scale = float(np.std(self.truth_map[known])) or 1.0
        return {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "nrmse": float(np.sqrt(np.mean(error**2)) / scale),
            "mae": float(np.mean(np.abs(error))),
        }
