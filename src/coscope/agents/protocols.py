"""What the campaign loop asks of an agent that chooses the modality (and request settings).

A grid agent (:class:`~coscope.agents.base.GridAgent`) learns one scalar target from one
modality; the loop hands it the target modality and the in-flight locations. An agent that
co-orchestrates several modalities (a cheap image and slow spectroscopy on one sample) or
co-navigates theory and experiment (a simulator is an instrument whose requests carry
parameters) implements :class:`ModalityChooser` instead. The loop then:

* keeps every instrument busy that offers at least one of :attr:`ModalityChooser.modalities`;
* asks :meth:`ModalityChooser.propose` for the idle instrument with the modalities it offers,
  every proposal still in flight (modality, location and ``params``: the pending points of
  every instrument), and the cost function of the campaign;
* hands it every stored measurement with its full signal (:meth:`ingest_measurements`), on
  resume in step order and then one by one as they complete.

Fitting stays the agent's business, as for grid agents: if it has ``needs_fit`` /
``training_data`` / ``fit_seed`` / ``model_kind`` / ``fit_options`` / ``load_fit``, the loop
runs its fits on the executor (a Dask worker) when due; otherwise it fits inside ``propose``
(or in the background) and may hand those fits over with ``take_fits() -> list[FitRecord]``,
which the loop records in the trace and MLflow after each proposal, numbered in trace order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from coscope.instruments.pricing import PriceFunction
from coscope.types import Measurement, Proposal

CostFunction = PriceFunction
"""``cost(instrument, modality, location, params=None) -> price`` in the campaign's cost unit:
the price the instrument charges for that request (:mod:`coscope.instruments.pricing`)."""


@runtime_checkable
class ModalityChooser(Protocol):
    """An agent that picks the modality, location and request ``params`` for an instrument."""

    modalities: tuple[str, ...]
    """Modalities it learns from and may propose (the target modality among them)."""

    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Learn from measurements (full signals, any of :attr:`modalities`); once per step."""
        ...

    def propose(
        self,
        *,
        step: int,
        instrument: str,
        offered: Sequence[str],
        pending: Sequence[Proposal],
        cost: CostFunction,
    ) -> Proposal | None:
        """The next measurement for ``instrument``, or ``None`` when it has nothing worth doing.

        Args:
            step: Decision index the proposal must carry.
            instrument: The idle instrument.
            offered: Modalities of ``instrument`` among :attr:`modalities`, in spec order.
            pending: Proposals decided but not yet measured, on every instrument.
            cost: Expected cost of a (instrument, modality, location).

        Returns:
            A proposal with ``instrument``, one of ``offered`` and its ``expected_cost``.
        """
        ...
