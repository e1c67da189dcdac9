"""Wrappers that add latency, noise or a cost model to ANY instrument.

Each wrapper satisfies :class:`~coscope.instruments.base.Instrument` itself, so wrappers
stack (``WithLatency(WithNoise(SimulatedInstrument(...), 0.05), 2.0)``), as zarr's
``LatencyStore`` wraps any store. Every wrapper re-validates the inner signal.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

import numpy as np

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments.base import Instrument, check_modality, per_modality, validate_signal
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

CostModel = float | Mapping[str, float] | Callable[[str, Location], float]
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
                "pass an object with name, modalities, info, expected_cost and measure."
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

    def expected_cost(self, modality: str, location: Location) -> float:
        """Cost of the wrapped instrument."""
        return self.inner.expected_cost(modality, location)

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
        rng = np.random.default_rng((int(request.seed), _NOISE_STREAM))
        noisy = m.signal + scale * rng.standard_normal(m.signal.shape)
        return dataclasses.replace(m, signal=noisy)


class WithCost(InstrumentWrapper):
    """Replaces the inner cost model.

    Args:
        inner: Any instrument.
        cost: One value, one per modality, or ``f(modality, location) -> float`` (>= 0).
    """

    def __init__(self, inner: Instrument, cost: CostModel) -> None:
        super().__init__(inner)
        if not callable(cost):
            for m in self.modalities:
                per_modality(cost, m, "cost", ConfigError)
        self.cost = cost

    def expected_cost(self, modality: str, location: Location) -> float:
        """The configured cost of ``modality`` at ``location``."""
        check_modality(self, modality)
        if callable(self.cost):
            value = self.cost(modality, location)
            if not np.isfinite(value) or value < 0:
                raise InstrumentError(
                    f"cost model returned {value!r} for {modality!r} at ({location.row}, "
                    f"{location.col}): it must return a finite value >= 0."
                )
            return float(value)
        return per_modality(self.cost, modality, "cost")

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with the inner instrument, charging :meth:`expected_cost`."""
        m = self._inner_measure(request)
        cost = self.expected_cost(request.modality, request.location)
        factor = getattr(self.inner, "cost_factor", None)  # e.g. a simulator's fidelity price
        if factor is not None:
            cost *= float(factor(request.params))
        return dataclasses.replace(m, cost=cost)
