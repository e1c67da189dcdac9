"""Per-instrument timeout, retries with backoff, and failure classification, as a wrapper.

:class:`WithResilience` runs each measurement of ``inner`` under a timeout (in a helper
thread: a driver that hangs is abandoned after ``timeout_s``, not waited out), validates the
signal, and classifies what went wrong by the error's ``failure_class``
(:mod:`coscope.errors`):

=================  ==========================================================  ========
class              raised as                                                   retried
=================  ==========================================================  ========
transient          :class:`~coscope.errors.TransientFault`, a timeout, or any   yes
                   non-coscope exception from the driver (``RuntimeError``,
                   ``OSError``, ``TimeoutError`` …: wrapped, one sentence)
bad_measurement    :class:`~coscope.errors.BadMeasurement` (NaN, wrong length)  yes
instrument_down    :class:`~coscope.errors.InstrumentDown`                      no
invalid_request    a plain :class:`~coscope.errors.InstrumentError`             no
=================  ==========================================================  ========

A retried request is the same request (same seed): a simulated instrument gives the same
signal, so retries never change what a campaign measures. Backoff before retry ``k``
(1-based) is ``backoff_s * 2 ** (k - 1)`` seconds, capped at ``max_backoff_s``. The error
raised after the last attempt says how many were made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coscope.errors import (
    ConfigError,
    CoscopeError,
    InstrumentError,
    InstrumentTimeout,
    TransientFault,
)
from coscope.instruments.base import Instrument
from coscope.instruments.wrappers import InstrumentWrapper
from coscope.types import Measurement, MeasurementRequest

RETRIED = ("transient", "bad_measurement")
"""Failure classes worth another attempt."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one instrument's measurements are guarded.

    Attributes:
        timeout_s: Wall-clock limit of one attempt, seconds; None: no limit.
        retries: Further attempts after a transient or bad measurement (0: none).
        backoff_s: Pause before the first retry, seconds; doubled for each further one.
        max_backoff_s: Longest pause between attempts, seconds.
    """

    timeout_s: float | None = None
    retries: int = 0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0 seconds; got {self.timeout_s}.")
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("retries, backoff_s and max_backoff_s must be >= 0.")

    def pause(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (1-based)."""
        return min(self.backoff_s * 2.0 ** (retry - 1), self.max_backoff_s)


def classify(exc: BaseException) -> str:
    """The failure class of an error from a measurement (see the module table)."""
    if isinstance(exc, InstrumentError):
        return exc.failure_class
    if isinstance(exc, CoscopeError):
        return "invalid_request"
    return "transient"


class WithResilience(InstrumentWrapper):
    """Guards ``inner``'s measurements by a :class:`RetryPolicy` (see the module doc).

    Args:
        inner: Any instrument.
        policy: Timeout, retries and backoff.
        sleep: Waits between attempts (injectable for tests).
    """

    def __init__(
        self,
        inner: Instrument,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.policy = policy
        self._sleep = sleep

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Measure, retrying transient and bad measurements; raises the last error, classified.

        Raises:
            InstrumentError: The classified error of the last attempt (one sentence).
        """
        attempts = self.policy.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(request)
            except Exception as exc:  # classified below; anything else is the driver's fault
                error = _as_instrument_error(exc, self.name)
                if error.failure_class not in RETRIED or attempt == attempts:
                    if attempt > 1:
                        error = type(error)(f"{str(error).rstrip('.')} (after {attempt} attempts).")
                    raise error from None
                self._sleep(self.policy.pause(attempt))
        raise AssertionError("unreachable")

    def _attempt(self, request: MeasurementRequest) -> Measurement:
        timeout = self.policy.timeout_s
        if timeout is None:
            return self._inner_measure(request)
        box: dict[str, object] = {}

        def run() -> None:
            try:
                box["result"] = self._inner_measure(request)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=run, name=f"measure-{self.name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():  # abandoned: a hung driver cannot hold the campaign
            raise InstrumentTimeout(
                f"instrument {self.name!r} did not finish step {request.step} within "
                f"{timeout:g} s (timeout_s)."
            )
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"]  # type: ignore[return-value]


def _as_instrument_error(exc: BaseException, name: str) -> InstrumentError:
    """``exc`` as a classified InstrumentError with one sentence."""
    if isinstance(exc, InstrumentError):
        return exc
    if isinstance(exc, CoscopeError):
        return InstrumentError(str(exc))
    text = " ".join(str(exc).split())[:200]
    return TransientFault(f"instrument {name!r} raised {type(exc).__name__}: {text}.")
