"""Wrappers that add latency or noise to ANY instrument (the price: :mod:`.pricing`).

Each wrapper satisfies :class:`~coscope.instruments.base.Instrument` itself, so wrappers
stack (``WithLatency(WithNoise(SimulatedInstrument(...), 0.05), 2.0)``), as zarr's
``LatencyStore`` wraps any store. Every wrapper re-validates the inner signal and leaves
``Measurement.cost`` alone: only :class:`~coscope.instruments.pricing.WithCost` sets it, from
the request alone, so the order of the wrappers cannot change a price. The capabilities of a
stack (:class:`~coscope.instruments.base.Priced`, ...) are those of its base instrument,
:func:`unwrap`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import numpy as np

from coscope.errors import ConfigError
from coscope.instruments.base import (
    Dwells,
    Instrument,
    check_modality,
    per_modality,
    validate_signal,
)
from coscope.types import Measurement, MeasurementRequest, ModalityInfo

_NOISE_STREAM = 0x6E6F6973  # "nois": keeps noise independent of other per-request streams


class InstrumentWrapper:
    """Base wrapper: delegates everything to ``inner`` and validates its signals.

    Args:
        inner: Any :class:`Instrument`.
    """

    def __init__(self, inner: Instrument) -> None:
        if not isinstance(inner, Instrument):
            raise ConfigError(
                f"{type(self).__name__} wraps instruments only, got {type(inner).__name__}: "
                "pass an object with name, modalities, info and measure."
            )
        self.inner = inner

    @property
    def name(self) -> str:
        """Name of the wrapped instrument."""
        return self.inner.name

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities of the wrapped instrument."""
        return tuple(self.inner.modalities)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def info(self, modality: str) -> ModalityInfo:
        """Signal description of ``modality`` (from the wrapped instrument)."""
        check_modality(self, modality)
        return self.inner.info(modality)

    def _inner_measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with ``inner``; InstrumentError if its signal is malformed or non-finite."""
        check_modality(self, request.modality)
        m = self.inner.measure(request)
        signal = validate_signal(self.info(request.modality), m.signal)
        return dataclasses.replace(m, signal=signal)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with the wrapped instrument (validated)."""
        return self._inner_measure(request)


class WithLatency(InstrumentWrapper):
    """Adds a real ``time.sleep(seconds * time_scale)`` to every measurement.

    Args:
        inner: Any instrument.
        seconds: Latency in seconds, one value or one per modality (>= 0).
        time_scale: Factor on every latency (``0`` disables sleeping, e.g. in tests).
    """

    def __init__(
        self, inner: Instrument, seconds: float | Mapping[str, float], time_scale: float = 1.0
    ) -> None:
        super().__init__(inner)
        if not np.isfinite(time_scale) or time_scale < 0:
            raise ConfigError(f"time_scale={time_scale!r} is invalid: use a value >= 0.")
        for m in self.modalities:
            per_modality(seconds, m, "latency", ConfigError)
        self.seconds = seconds
        self.time_scale = float(time_scale)

    def latency(self, modality: str) -> float:
        """Seconds actually slept for one measurement of ``modality``."""
        return per_modality(self.seconds, modality, "latency") * self.time_scale

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure, then sleep; ``t_start``/``t_end`` span both."""
        t_start = time.time()
        m = self._inner_measure(request)
        time.sleep(self.latency(request.modality))
        return dataclasses.replace(m, t_start=min(t_start, m.t_start), t_end=time.time())


class WithNoise(InstrumentWrapper):
    """Adds Gaussian noise seeded by ``request.seed`` (same request -> same signal).

    Args:
        inner: Any instrument.
        sigma: Noise standard deviation (>= 0); with ``relative`` it is a fraction of the
            clean signal's peak-to-peak amplitude, else in signal units.
        relative: Whether ``sigma`` is relative to the signal's peak-to-peak amplitude.

    Over a base that :class:`~coscope.instruments.base.Dwells`, a request of dwell ``d`` gets
    ``sigma / sqrt(d)`` (``d = 1``: ``sigma`` exactly).
    """

    def __init__(self, inner: Instrument, sigma: float, relative: bool = True) -> None:
        super().__init__(inner)
        if not np.isfinite(sigma) or sigma < 0:
            raise ConfigError(f"noise sigma={sigma!r} is invalid: use a value >= 0.")
        self.sigma = float(sigma)
        self.relative = relative

    def measure(self, request: MeasurementRequest) -> Measurement:
        """The inner signal plus ``N(0, std**2)`` noise from ``default_rng((seed, stream))``."""
        m = self._inner_measure(request)
        scale = self.sigma * (float(np.ptp(m.signal)) if self.relative else 1.0)
        base = unwrap(self.inner)
        if isinstance(base, Dwells):
            scale /= float(np.sqrt(base.dwell(request.params)))
        rng = np.random.default_rng((int(request.seed), _NOISE_STREAM))
        noisy = m.signal + scale * rng.standard_normal(m.signal.shape)
        return dataclasses.replace(m, signal=noisy)


def unwrap(instrument: Instrument) -> Instrument:
    """The base instrument under any stack of wrappers (whose capabilities the stack has)."""
    while isinstance(instrument, InstrumentWrapper):
        instrument = instrument.inner
    return instrument
