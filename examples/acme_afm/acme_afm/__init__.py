"""ACME AFM as a coscope instrument kind: the worked example of docs/connect-your-instrument.md.

A facility's driver package defines an instrument (the :class:`coscope.instruments.Instrument`
protocol: ``name``, ``modalities``, ``info(modality)``, ``measure(request)``) and a factory
``make_afm(name, space, modalities, **options)``. coscope calls the factory with the
campaign's space (where it may measure; ``space.coordinates()`` in µm) and the spec's
options, in the campaign process and in every Dask worker. Here the "vendor API" is a
deterministic loop model of the stage position, so the example runs anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from coscope.instruments import validate_request
from coscope.instruments.base import check_modality
from coscope.instruments.physics import triangle_sweep
from coscope.spaces import Space
from coscope.types import Measurement, MeasurementRequest, ModalityInfo


class AcmeAfm:
    """Measures a piezoresponse hysteresis loop ``(L,)`` at a stage position.

    Args:
        name: Instrument name (the spec's).
        space: The campaign's space.
        n_voltage: Points per loop (a sweep ``0 -> +v_max -> 0 -> -v_max -> 0``).
        v_max: Sweep amplitude, V.
        domain_um: Size of the coercive-field pattern on the sample, µm.
    """

    def __init__(self, name: str, space: Space, n_voltage: int, v_max: float, domain_um: float):
        self.name = name
        self.modalities = ("beps_loop",)
        self._space = space
        self._positions = space.coordinates()  # n x 2, µm, in the order of space.indices
        self._info = ModalityInfo(
            "beps_loop", triangle_sweep(n_voltage, v_max), "voltage", "V", "P/P_s"
        )
        self._domain_um = domain_um

    def info(self, modality: str) -> ModalityInfo:
        """The loop's description (the voltage sweep)."""
        check_modality(self, modality)  # InstrumentError (one sentence) for another modality
        return self._info

    def measure(self, request: MeasurementRequest) -> Measurement:
        """The loop at the request's location (validated first: a wrong request is refused)."""
        t_start = time.time()
        validate_request(self, self._space.layout, request)
        flat = request.location.row * self._space.layout[1] + request.location.col
        row_um, col_um = self._positions[np.searchsorted(self._space.indices, flat)]
        k = 2 * np.pi / self._domain_um
        coercive = 0.3 + 0.15 * np.sin(k * row_um) * np.cos(k * col_um)  # fraction of v_max
        voltage = self._info.axis
        v_max = float(np.max(voltage))
        rising = np.gradient(voltage) >= 0  # the branch the sweep is on
        shift = np.where(rising, coercive, -coercive) * v_max
        loop = np.tanh((voltage - shift) / (0.15 * v_max))
        return Measurement(
            step=request.step,
            instrument=self.name,
            modality=request.modality,
            location=request.location,
            signal=loop.astype(np.float64),
            cost=1.0,
            t_start=t_start,
            t_end=time.time(),
        )


def make_afm(
    name: str,
    space: Space,
    modalities: Sequence[str] | None = None,
    *,
    n_voltage: int = 32,
    v_max: float = 8.5,
    domain_um: float = 0.5,
) -> AcmeAfm:
    """The coscope factory: ``kind: "acme_afm:make_afm"`` or, installed, ``kind: acme_afm``."""
    del modalities  # it offers one modality, beps_loop; coscope checks the spec asks for it
    return AcmeAfm(name, space, int(n_voltage), float(v_max), float(domain_um))
