"""A detector for rehearsing a beamline session without hardware: a coscope sample behind
ophyd signals.

:class:`SampleDetector` is an ophyd device whose ``spectrum`` signal, on ``trigger()``, holds
the sample's signal at the candidate nearest to where its positioners stand (ophyd.sim
``SynAxis`` or any positioner with a ``position``), plus optional Gaussian noise from its own
seed. With ``noise=0`` it returns what coscope's ``simulated`` instrument with ``noise: 0``
returns for the same location, so a Bluesky campaign on it leaves the trace ``coscope run``
leaves (tests/bluesky/test_plan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from coscope.bluesky.stage import StageMap
from coscope.instruments import Sample
from coscope.types import Location


@runtime_checkable
class Positioner(Protocol):
    """What a :class:`SampleDetector` reads its location from (ophyd positioners, SynAxis)."""

    @property
    def position(self) -> Any:
        """Where the axis stands now, in its own units."""
        ...


class SampleDetector(Device):
    """The signal of ``sample`` at the motors' positions (see the module docstring).

    Args:
        sample: The simulated sample or dataset twin (its ground truth is measured).
        modality: The modality the detector measures; ``spectrum`` holds ``(L,)`` float64.
        stage: Where each candidate's set-points are (the plan's own map).
        positioners: The motors, one per coordinate, in the stage's order (``None``: a
            coordinate every candidate shares).
        noise: Standard deviation of the added noise, signal units (0: the exact signal).
        seed: Seed of the noise.
        name: The device name (its data key is ``<name>_spectrum``).
    """

    spectrum = Cpt(Signal, kind="hinted")

    def __init__(
        self,
        *,
        sample: Sample,
        modality: str,
        stage: StageMap,
        positioners: Sequence[Positioner | None],
        noise: float = 0.0,
        seed: int = 0,
        name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.sample, self.modality, self.stage = sample, modality, stage
        self.positioners = tuple(positioners)
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.spectrum.put(np.zeros(sample.info(modality).length))
        self.triggered = 0  # how many times the detector was triggered

    def where(self) -> Location:
        """The candidate the stage stands at (nearest to the positioners' positions)."""
        fixed = self.stage.setpoints_all[0]  # where an axis without a motor always is
        return self.stage.nearest(
            [
                fixed[axis] if p is None else float(p.position)
                for axis, p in enumerate(self.positioners)
            ]
        )

    def measure(self) -> np.ndarray:
        """The signal now, ``(L,)`` float64 (what :meth:`trigger` puts in ``spectrum``)."""
        signal = np.asarray(self.sample.signal(self.modality, self.where()), dtype=np.float64)
        if self.noise > 0:
            signal = signal + self.rng.normal(0.0, self.noise, signal.shape)
        return signal

    def trigger(self) -> DeviceStatus:
        """Acquire: ``spectrum`` holds :meth:`measure`; the status is done at once."""
        self.triggered += 1
        status = DeviceStatus(self)
        try:
            self.spectrum.put(self.measure())
        except Exception as exc:  # a failing acquisition fails the status, as hardware does
            status.set_exception(exc)
        else:
            status.set_finished()
        return status
