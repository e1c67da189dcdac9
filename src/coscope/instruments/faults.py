"""Injected faults: a wrapper that makes ANY instrument fail the way real ones do, for testing.

:class:`WithFaults` draws, per request and attempt, one of: a transient error, a hang (the
measurement takes ``hang_s`` longer, for a timeout to catch), a NaN in the signal, a signal
one point short, or nothing; from ``down_from_step`` on, every request finds the instrument
disconnected; a request inside ``bad_region`` (a rectangle of pixels) always comes back
unusable (:class:`~coscope.errors.BadMeasurement`): a region of the sample that cannot be
measured, which a campaign with ``feasibility: learn`` learns to avoid. The draw is seeded
by the fault seed, the request's seed and step, and the attempt number (how often this
wrapper saw that request), so a campaign with faults is as reproducible as one without: the
same request fails the same way on its n-th attempt, also after a resume. Spec form
(``instruments[].faults``)::

    faults: {error_rate: 0.1, hang_rate: 0.05, hang_s: 2.0, nan_rate: 0.05,
             wrong_length_rate: 0.02, down_from_step: 40, bad_region: [0, 0, 4, 8],
             seed: 7}

Put :class:`~coscope.instruments.resilience.WithResilience` above it (the registry does) to
see the faults classified, retried and timed out.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np

from coscope.errors import BadMeasurement, ConfigError, InstrumentDown, TransientFault
from coscope.instruments.base import Instrument
from coscope.instruments.wrappers import InstrumentWrapper
from coscope.types import Measurement, MeasurementRequest

_FAULT_STREAM = 0x66617574  # "faut": independent of the noise and physics streams
KINDS = ("error", "hang", "nan", "wrong_length")
"""Fault kinds a request may draw, in the order of their rates."""


@dataclass(frozen=True)
class FaultPlan:
    """Rates (probability per attempt, summing to <= 1) and settings of injected faults.

    Attributes:
        error_rate: A :class:`~coscope.errors.TransientFault` instead of a measurement.
        hang_rate: The measurement takes ``hang_s`` seconds longer (then succeeds).
        hang_s: Length of a hang, seconds (not scaled by the campaign's ``time_scale``).
        nan_rate: One signal value replaced by NaN.
        wrong_length_rate: The signal comes back one point short.
        down_from_step: From this decision step on the instrument is disconnected
            (:class:`~coscope.errors.InstrumentDown`); None: never.
        bad_region: ``(r0, c0, r1, c1)``, pixels, ends exclusive: every request there is a
            :class:`~coscope.errors.BadMeasurement`; None: nowhere.
        seed: Seed of the fault draws.
    """

    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 1.0
    nan_rate: float = 0.0
    wrong_length_rate: float = 0.0
    down_from_step: int | None = None
    bad_region: tuple[int, int, int, int] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        rates = self.rates()
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-12:
            raise ConfigError(
                f"fault rates {dict(zip(KINDS, rates, strict=True))} must each lie in [0, 1] "
                "and sum to at most 1."
            )
        if self.hang_s < 0:
            raise ConfigError(f"faults.hang_s must be >= 0 seconds; got {self.hang_s}.")

    def in_bad_region(self, request: MeasurementRequest) -> bool:
        """Whether ``request``'s location lies in :attr:`bad_region`."""
        if self.bad_region is None:
            return False
        r0, c0, r1, c1 = self.bad_region
        loc = request.location
        return r0 <= loc.row < r1 and c0 <= loc.col < c1

    def rates(self) -> tuple[float, ...]:
        """The rate of each of :data:`KINDS`."""
        return (self.error_rate, self.hang_rate, self.nan_rate, self.wrong_length_rate)

    def draw(self, request: MeasurementRequest, attempt: int) -> str | None:
        """The fault of ``request`` on its ``attempt``-th try (0 first), or None."""
        rng = np.random.default_rng(
            [self.seed, int(request.seed), int(request.step), attempt, _FAULT_STREAM]
        )
        u = float(rng.random())
        edges = np.cumsum(self.rates())
        hit = int(np.searchsorted(edges, u, side="right"))
        return KINDS[hit] if hit < len(KINDS) else None


class WithFaults(InstrumentWrapper):
    """Injects the faults of a :class:`FaultPlan` into ``inner``'s measurements.

    Args:
        inner: Any instrument.
        plan: What to inject, how often.
    """

    def __init__(self, inner: Instrument, plan: FaultPlan) -> None:
        super().__init__(inner)
        self.plan = plan
        self._attempts: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def _attempt(self, request: MeasurementRequest) -> int:
        key = (int(request.step), int(request.seed))
        with self._lock:
            n = self._attempts.get(key, 0)
            self._attempts[key] = n + 1
        return n

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure with ``inner``, then spoil the result as drawn (see the module doc).

        Raises:
            InstrumentDown: From ``plan.down_from_step`` on.
            BadMeasurement: Inside ``plan.bad_region``.
            TransientFault: An injected error.
        """
        plan = self.plan
        if plan.down_from_step is not None and request.step >= plan.down_from_step:
            raise InstrumentDown(
                f"instrument {self.name!r} is disconnected (injected fault from step "
                f"{plan.down_from_step}); reconnect it, then resume."
            )
        if plan.in_bad_region(request):
            raise BadMeasurement(
                f"instrument {self.name!r} measured nothing usable at {request.location} "
                "(injected bad region)."
            )
        fault = plan.draw(request, self._attempt(request))
        if fault == "error":
            raise TransientFault(
                f"instrument {self.name!r} reported a transient error at step {request.step} "
                "(injected fault)."
            )
        if fault == "hang":
            time.sleep(plan.hang_s)
        m = self._inner_measure(request)
        if fault == "nan":
            signal = m.signal.copy()
            signal[len(signal) // 2] = np.nan
            return dataclasses.replace(m, signal=signal)
        if fault == "wrong_length":
            return dataclasses.replace(m, signal=m.signal[:-1].copy())
        return m
