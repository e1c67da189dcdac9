"""Everything one campaign run needs, wired once by the composition root (``infra.compose``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coscope.agents.protocols import ModalityChooser
from coscope.config import CampaignSpec
from coscope.instruments import Sample
from coscope.instruments.costs import base_cost, travel_cost
from coscope.scalarizers import scalarize
from coscope.spaces import Space
from coscope.storage import TraceStore
from coscope.types import Location, Measurement, Observation


@dataclass
class CampaignContext:
    """The wired parts of a campaign.

    Attributes:
        spec: The validated campaign spec.
        sample: The sample (its grid, structure image, and ground truth when known).
        store: The experimental trace, open for appending.
        agent: The decision maker (``ingest`` / ``suggest`` / ``report``).
        tracker: MLflow (or null) tracker.
        truth_map: Ground-truth scalar target over the grid, ``(H, W)``, or ``None``; NaN
            at cells that are not candidates of the space.
        space: The campaign's candidate space (``docs/spaces.md``; None: every pixel).
        on_measurement: Called with each history row (progress display), or ``None``.
        metrics_every: Compute prediction error against ground truth every this many
            measurements (it costs one prediction over the whole grid).
        reward: ``signal -> float`` replacing the scalarizer (vote similarity, set by
            steering, :mod:`coscope.campaign.adopt`), or ``None``.
    """

    spec: CampaignSpec
    sample: Sample
    store: TraceStore
    agent: Any
    tracker: Any
    truth_map: np.ndarray | None = None
    space: Space | None = None
    on_measurement: Callable[[dict[str, float]], None] | None = None
    metrics_every: int = 1
    reward: Callable[[np.ndarray], float] | None = None
    _n_metrics: int = field(default=0, repr=False)
    _origins: dict[str, Location] = field(default_factory=dict, repr=False)
    _n_origins: int = field(default=-1, repr=False)

    @property
    def target_modality(self) -> str:
        """The modality whose scalarized signal is the campaign's target."""
        return self.spec.scalarizer.modality

    def observe(self, measurement: Measurement) -> Observation:
        """Scalarize a measurement into the agent's training target."""
        axis = self.sample.info(measurement.modality).axis
        scalarizer = self.spec.scalarizer
        if self.reward is not None and measurement.modality == self.target_modality:
            value = self.reward(measurement.signal)
        else:
            value = scalarize(scalarizer.name, measurement.signal, axis, scalarizer.params)
        return Observation(
            measurement.step, measurement.modality, measurement.location, float(value)
        )

    def feed_agent(self, measurements: list[Measurement]) -> list[Observation]:
        """Hand stored ``measurements`` to the agent; returns the target observations.

        A :class:`ModalityChooser` gets every measurement in step order (and, if it asks with
        ``remember_params``, the request params of every stored decision first); a grid
        agent gets the scalarized observations of the target modality.
        """
        observations = [self.observe(m) for m in measurements if m.modality == self.target_modality]
        agent = self.agent
        if isinstance(agent, ModalityChooser):
            remember = getattr(agent, "remember_params", None)  # request params of decisions
            for decision in self.store.decisions() if remember is not None else ():
                remember(decision.step, decision.params)
            agent.ingest_measurements(sorted(measurements, key=lambda m: m.step))
        elif observations:
            agent.ingest(observations)
        return observations

    def agent_modalities(self) -> tuple[str, ...]:
        """Modalities the agent proposes: its own list if it chooses, else the target."""
        if isinstance(self.agent, ModalityChooser):
            return tuple(self.agent.modalities)
        return (self.target_modality,)

    def offered_modalities(self, name: str) -> list[str]:
        """Modalities of instrument ``name`` that the agent proposes, in spec order."""
        wanted = self.agent_modalities()
        inst = next(i for i in self.spec.instruments if i.name == name)
        return [m for m in inst.modalities if m in wanted]

    def active_instruments(self) -> list[str]:
        """Instruments offering a modality the agent proposes, in spec order."""
        return [i.name for i in self.spec.instruments if self.offered_modalities(i.name)]

    def instrument_cost(self, name: str) -> float:
        """Cost of one measurement on instrument ``name`` (of the target, if per modality)."""
        cost = next(i.cost for i in self.spec.instruments if i.name == name)
        if isinstance(cost, dict):
            return cost.get(self.target_modality, min(cost.values()))
        return cost

    def expected_cost(self, instrument: str, modality: str, location: Location) -> float:
        """Expected cost of measuring ``modality`` at ``location`` on ``instrument``.

        The :data:`~coscope.agents.protocols.CostFunction` handed to a modality-choosing
        agent: the spec's per-modality cost plus stage travel from the instrument's latest
        decision (:mod:`coscope.instruments.costs`; the origin is read from the trace).
        """
        inst = next(i for i in self.spec.instruments if i.name == instrument)
        base = base_cost(inst.cost, modality)
        if not inst.travel_cost_per_um:
            return base
        count = self.store.counts()["decisions"]
        if count != self._n_origins:
            self._origins = {d.instrument: d.location for d in self.store.decisions()}
            self._n_origins = count
        origin = self._origins.get(instrument)
        return base + travel_cost(
            inst.travel_cost_per_um, self.sample.pixel_size_um, origin, location
        )

    def prediction_metrics(self) -> dict[str, float]:
        """RMSE and MAE of the predicted map against ground truth, when known and due."""
        self._n_metrics += 1
        if self.truth_map is None or (self._n_metrics - 1) % self.metrics_every:
            return {}
        report = self.agent.report()
        if report is None or report.mean is None:
            return {}
        known = np.isfinite(self.truth_map)  # the candidates of the space
        error = (report.mean - self.truth_map)[known]
        scale = float(np.std(self.truth_map[known])) or 1.0
        return {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "nrmse": float(np.sqrt(np.mean(error**2)) / scale),
            "mae": float(np.mean(np.abs(error))),
        }
