"""The data contract: frozen dataclasses that cross every boundary in coscope.

Every object here is plain data (no live handles), cheap to pickle across Dask, and maps
one-to-one onto a row of the experimental trace (see ``docs/trace.md``).

Conventions:
    * A location is a pixel ``(row, col)`` of the sample grid, ``0 <= row < H``,
      ``0 <= col < W``. Physical units come from the sample's ``pixel_size_um``.
    * Times are Unix seconds (float, wall clock).
    * Costs are in the campaign's cost unit (default: seconds of instrument time).
    * ``step`` is the 0-based index of a decision in the campaign. One decision asks for one
      measurement; the measurement that answers decision ``k`` carries ``step == k``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 3
"""Version of the experimental-trace schema written by this code (2 added ``decisions/params``
and ``decisions/n_known``; 3 added ``approval`` rows to the interventions table, which an
older coscope would ignore and so re-issue a rejected decision: it must refuse such a trace;
an older trace is upgraded in place when opened for appending, see ``docs/trace.md``)."""


@dataclass(frozen=True, order=True)
class Location:
    """A pixel of the sample grid.

    Attributes:
        row: Row index, ``0 <= row < H``.
        col: Column index, ``0 <= col < W``.
    """

    row: int
    col: int

    def flat(self, width: int) -> int:
        """Row-major flat index on a grid ``width`` pixels wide."""
        return self.row * width + self.col

    @classmethod
    def from_flat(cls, index: int, width: int) -> Location:
        """Inverse of :meth:`flat`."""
        return cls(int(index) // width, int(index) % width)


@dataclass(frozen=True)
class ModalityInfo:
    """What one modality's signal looks like.

    Attributes:
        name: Modality name, e.g. ``"beps_loop"``.
        axis: ``L`` values of the signal's independent variable (e.g. voltage), float64.
        axis_name: Name of the axis, e.g. ``"voltage"``.
        axis_units: Units of the axis, e.g. ``"V"``.
        signal_units: Units of the signal values, e.g. ``"a.u."``.
    """

    name: str
    axis: np.ndarray = field(compare=False)
    axis_name: str = "index"
    axis_units: str = ""
    signal_units: str = "a.u."

    @property
    def length(self) -> int:
        """Number of samples ``L`` in one signal."""
        return int(self.axis.shape[0])


@dataclass(frozen=True)
class Proposal:
    """A decision: what the agent asks to be measured next, and why (plain data).

    Attributes:
        step: Decision index in the campaign (0-based, unique).
        instrument: Name of the instrument that should execute it.
        modality: Modality to measure.
        location: Where to measure.
        policy: Name of the rule that chose it (``"ei"``, ``"ucb"``, ``"maxvar"``,
            ``"random"``, ``"raster"``, ``"seed"``).
        score: Acquisition value of the chosen point (NaN for rules without one).
        expected_cost: Cost the agent expected to pay for it.
        model_version: Version of the surrogate used (``-1`` when none was used).
        predicted_mean: Surrogate mean of the scalar target at ``location`` (NaN if none).
        predicted_std: Surrogate standard deviation at ``location`` (NaN if none).
        t_decided: Unix time the decision was made.
        params: Settings of this one measurement beyond modality and location, JSON-safe
            (e.g. a theory simulator's parameters ``theta`` and its ``fidelity``); empty for
            an ordinary measurement. Passed to the instrument in the request.
        n_known: Measurements committed in the trace when it was decided (what the agent
            knew; replay feeds exactly these). Stamped by the loop; ``-1`` when unknown.
    """

    step: int
    instrument: str
    modality: str
    location: Location
    policy: str
    score: float = float("nan")
    expected_cost: float = 0.0
    model_version: int = -1
    predicted_mean: float = float("nan")
    predicted_std: float = float("nan")
    t_decided: float = 0.0
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    n_known: int = -1


@dataclass(frozen=True)
class MeasurementRequest:
    """What an instrument is asked to do; derived from a :class:`Proposal`.

    Attributes:
        step: The decision this request answers.
        instrument: Instrument name.
        modality: Modality to measure.
        location: Where to measure.
        seed: Seed for any randomness of this one measurement (noise, faults). Derived from
            the campaign seed and ``step`` so a re-issued request after a crash reproduces the
            same signal.
        params: The proposal's :attr:`Proposal.params` (e.g. simulator parameters).
    """

    step: int
    instrument: str
    modality: str
    location: Location
    seed: int
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_proposal(cls, proposal: Proposal, campaign_seed: int) -> MeasurementRequest:
        """The request that executes ``proposal``; deterministic in (seed, step)."""
        sequence = np.random.SeedSequence([campaign_seed, 7919, proposal.step])
        seed = int(sequence.generate_state(1)[0])
        return cls(
            proposal.step,
            proposal.instrument,
            proposal.modality,
            proposal.location,
            seed,
            dict(proposal.params),
        )


@dataclass(frozen=True)
class Measurement:
    """One observation, with its full signal.

    Attributes:
        step: The decision that asked for it.
        instrument: Instrument that produced it.
        modality: Modality measured.
        location: Where.
        signal: The whole signal, shape ``(L,)``, float64, in the modality's signal units.
        cost: Cost charged for it.
        t_start: Unix time the instrument started.
        t_end: Unix time the instrument finished.
    """

    step: int
    instrument: str
    modality: str
    location: Location
    signal: np.ndarray = field(compare=False, repr=False)
    cost: float = 0.0
    t_start: float = 0.0
    t_end: float = 0.0

    @classmethod
    def answering(
        cls, request: MeasurementRequest, instrument: str, signal: np.ndarray, t_start: float
    ) -> Measurement:
        """The unit-cost measurement of ``request`` by ``instrument``, ending now (the cost
        layer, :class:`~coscope.instruments.pricing.WithCost`, sets the price)."""
        return cls(
            step=request.step,
            instrument=instrument,
            modality=request.modality,
            location=request.location,
            signal=signal,
            cost=1.0,
            t_start=t_start,
            t_end=time.time(),
        )


@dataclass(frozen=True)
class Observation:
    """A scalarized measurement: what the surrogate is trained on.

    Attributes:
        step: Decision index of the measurement.
        modality: Modality measured.
        location: Where.
        value: Scalar target (output of the campaign's scalarizer), finite float.
    """

    step: int
    modality: str
    location: Location
    value: float


@dataclass(frozen=True)
class FitRecord:
    """One fitted surrogate version.

    Attributes:
        version: Model version (increasing from 0).
        step: Number of observations it was trained on (== the next decision step it serves).
        n_train: Number of training points.
        loss: Final negative marginal log likelihood per point.
        seconds: Wall time of the fit.
        hyperparameters: Named scalar hyperparameters (lengthscales, noise, outputscale …).
    """

    version: int
    step: int
    n_train: int
    loss: float
    seconds: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Intervention:
    """A human change to a campaign, recorded in the trace like a measurement.

    Attributes:
        kind: What changed (``"pause"``, ``"resume"``, ``"stop"``, ``"policy"`` …).
        payload: JSON-serialisable details of the change.
        step: The next decision step when it was applied.
        who: Who issued it.
        why: Free-text reason.
        t: Unix time it was applied.
    """

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    who: str = ""
    why: str = ""
    t: float = 0.0
