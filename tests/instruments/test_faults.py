"""Faults as part of the instrument stack: injected faults, classification, timeout, retries."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from coscope.errors import (
    BadMeasurement,
    ConfigError,
    InstrumentDown,
    InstrumentError,
    InstrumentTimeout,
    TransientFault,
)
from coscope.instruments import SimulatedInstrument, synthetic_film
from coscope.instruments.faults import FaultPlan, WithFaults
from coscope.instruments.resilience import RetryPolicy, WithResilience, classify
from coscope.types import Location, Measurement, MeasurementRequest

SAMPLE = synthetic_film(size=12, seed=5, n_voltage=32)


def _req(step: int = 0, seed: int = 11) -> MeasurementRequest:
    return MeasurementRequest(step, "afm", "beps_loop", Location(2, 3), seed)


def _afm() -> SimulatedInstrument:
    return SimulatedInstrument("afm", SAMPLE)


def test_fault_draws_are_seeded_per_request_and_attempt_and_follow_the_rates() -> None:
    plan = FaultPlan(error_rate=0.2, hang_rate=0.1, nan_rate=0.1, wrong_length_rate=0.1, seed=3)
    draws = [plan.draw(_req(step, seed=step * 7 + 1), 0) for step in range(4000)]
    assert draws == [plan.draw(_req(step, seed=step * 7 + 1), 0) for step in range(4000)]
    share = {k: draws.count(k) / len(draws) for k in ("error", "hang", "nan", "wrong_length")}
    assert 0.17 < share["error"] < 0.23 and all(
        0.08 < share[k] < 0.12 for k in share if k != "error"
    )
    assert [plan.draw(_req(), a) for a in range(40)].count(None) > 10  # attempts differ
    with pytest.raises(ConfigError, match="sum to at most 1"):
        FaultPlan(error_rate=0.6, nan_rate=0.6)


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        (FaultPlan(error_rate=1.0), TransientFault),
        (FaultPlan(down_from_step=0), InstrumentDown),
    ],
)
def test_injected_errors_are_classified(plan: FaultPlan, error: type) -> None:
    with pytest.raises(error):
        WithFaults(_afm(), plan).measure(_req())


def test_injected_bad_signals_are_bad_measurements_above_the_wrapper() -> None:
    nan = WithFaults(_afm(), FaultPlan(nan_rate=1.0)).measure(_req())
    assert np.isnan(nan.signal).sum() == 1
    short = WithFaults(_afm(), FaultPlan(wrong_length_rate=1.0)).measure(_req())
    assert short.signal.shape == (31,)
    for plan in (FaultPlan(nan_rate=1.0), FaultPlan(wrong_length_rate=1.0)):
        guarded = WithResilience(
            WithFaults(_afm(), plan), RetryPolicy(retries=2), sleep=lambda s: None
        )
        with pytest.raises(BadMeasurement, match="after 3 attempts"):
            guarded.measure(_req())


def test_retries_make_transient_faults_invisible() -> None:
    clean = _afm().measure(_req(5, 99))
    pauses: list[float] = []
    plan = FaultPlan(error_rate=0.4, nan_rate=0.2, wrong_length_rate=0.1, seed=1)
    guarded = WithResilience(
        WithFaults(_afm(), plan),
        RetryPolicy(retries=30, backoff_s=0.1, max_backoff_s=0.4),
        sleep=pauses.append,
    )
    for step in range(20):
        m = guarded.measure(_req(step, 99 + step))
        np.testing.assert_array_equal(m.signal, _afm().measure(_req(step, 99 + step)).signal)
    np.testing.assert_array_equal(guarded.measure(_req(5, 99)).signal, clean.signal)
    assert pauses and max(pauses) <= 0.4 and pauses.count(0.1) >= 1


def test_down_and_invalid_requests_are_not_retried() -> None:
    calls: list[int] = []

    class Counting(SimulatedInstrument):
        def measure(self, request: MeasurementRequest) -> Measurement:
            calls.append(request.step)
            raise InstrumentDown("the stage controller is off.")

    guarded = WithResilience(Counting("afm", SAMPLE), RetryPolicy(retries=5), sleep=lambda s: None)
    with pytest.raises(InstrumentDown):
        guarded.measure(_req())
    assert calls == [0]
    off_grid = MeasurementRequest(0, "afm", "beps_loop", Location(99, 0), 1)
    with pytest.raises(InstrumentError, match="off the sample") as info:
        WithResilience(_afm(), RetryPolicy(retries=5), sleep=lambda s: None).measure(off_grid)
    assert classify(info.value) == "invalid_request"


def test_driver_exceptions_become_one_sentence_and_are_retried() -> None:
    failures = iter([RuntimeError("serial port\nbusy"), TimeoutError("no reply")])

    class Flaky(SimulatedInstrument):
        def measure(self, request: MeasurementRequest) -> Measurement:
            error = next(failures, None)
            if error is not None:
                raise error
            return super().measure(request)

    assert WithResilience(
        Flaky("afm", SAMPLE), RetryPolicy(retries=2), sleep=lambda s: None
    ).measure(_req()).signal.shape == (32,)
    failures = iter([RuntimeError("serial port\nbusy")])
    with pytest.raises(TransientFault) as info:
        WithResilience(Flaky("afm", SAMPLE), RetryPolicy()).measure(_req())
    assert "RuntimeError: serial port busy" in str(info.value) and "\n" not in str(info.value)
    assert classify(RuntimeError()) == "transient" and classify(info.value) == "transient"


def test_a_hung_driver_is_abandoned_at_the_timeout() -> None:
    release = threading.Event()

    class Hung(SimulatedInstrument):
        def measure(self, request: MeasurementRequest) -> Measurement:
            release.wait(60)
            return super().measure(request)

    guarded = WithResilience(
        Hung("afm", SAMPLE), RetryPolicy(timeout_s=0.2, retries=1), sleep=lambda s: None
    )
    try:
        with pytest.raises(InstrumentTimeout, match="within 0.2 s .*after 2 attempts"):
            guarded.measure(_req())
    finally:
        release.set()


def test_a_campaign_with_faults_and_retries_measures_what_a_clean_one_does(tmp_path: Path) -> None:
    from tests.campaign.test_loop import _path, _run, _spec

    base = {"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.02}
    faulty = {
        **base,
        "retries": 8,
        "backoff_s": 0.0,
        "faults": {"error_rate": 0.3, "nan_rate": 0.1, "wrong_length_rate": 0.1, "seed": 2},
    }
    budget = {"max_measurements": 8}
    _, clean = _run(_spec(tmp_path / "a", instruments=[base], budget=budget))
    _, noisy = _run(_spec(tmp_path / "b", instruments=[faulty], budget=budget))
    assert _path(noisy.store) == _path(clean.store)
    for a, b in zip(clean.store.measurements(), noisy.store.measurements(), strict=True):
        np.testing.assert_array_equal(a.signal, b.signal)
    down = {**base, "faults": {"down_from_step": 3}, "retries": 2, "backoff_s": 0.0}
    outcome, ctx = _run(_spec(tmp_path / "c", instruments=[down], budget=budget))
    assert outcome.status == "failed" and "disconnected" in outcome.reason
    assert ctx.store.counts()["measurements"] == 3
    (failure,) = [i for i in ctx.store.interventions() if i.kind == "failed_measurement"]
    assert failure.payload["step"] == 3 and failure.payload["failure_class"] == "instrument_down"
    assert failure.payload["cost_charged"] == 0.0 and "disconnected" in failure.payload["reason"]
    assert [p.step for p in ctx.store.pending_decisions()] == [3]  # resume re-issues it
