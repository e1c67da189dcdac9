"""The contract every Instrument passes: simulated, each wrapper, and a composed stack."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from coscope.errors import InstrumentError
from coscope.instruments import (
    Instrument,
    SimulatedInstrument,
    WithCost,
    WithLatency,
    WithNoise,
    build_instrument,
    synthetic_film,
)
from coscope.types import Location, Measurement, MeasurementRequest

SAMPLE = synthetic_film(size=16, seed=3, n_voltage=32)
NAME = "afm"


def _cost_by_row(modality: str, location: Location) -> float:
    return 1.0 + 0.1 * location.row


FACTORIES: dict[str, Callable[[], Instrument]] = {
    "simulated": lambda: SimulatedInstrument(NAME, SAMPLE, cost=2.5),
    "latency": lambda: WithLatency(SimulatedInstrument(NAME, SAMPLE), 0.01, time_scale=0.5),
    "noise": lambda: WithNoise(SimulatedInstrument(NAME, SAMPLE), 0.05),
    "noise_absolute": lambda: WithNoise(SimulatedInstrument(NAME, SAMPLE), 0.1, relative=False),
    "cost_callable": lambda: WithCost(SimulatedInstrument(NAME, SAMPLE), _cost_by_row),
    "cost_mapping": lambda: WithCost(SimulatedInstrument(NAME, SAMPLE), {"beps_loop": 4.0}),
    "stack": lambda: WithLatency(
        WithNoise(WithCost(SimulatedInstrument(NAME, SAMPLE), _cost_by_row), 0.02), 0.002
    ),
    "registry": lambda: build_instrument(
        NAME, SAMPLE, latency_s={"beps_loop": 0.001}, cost=3.0, noise=0.05
    ),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], Instrument]:
    return FACTORIES[request.param]


@pytest.fixture
def instrument(factory: Callable[[], Instrument]) -> Instrument:
    return factory()


HERE = Location(5, 7)


def _request(loc: Location = HERE, modality: str = "beps_loop", step: int = 4):
    return MeasurementRequest(step, NAME, modality, loc, seed=1234)


def test_is_an_instrument(instrument: Instrument) -> None:
    assert isinstance(instrument, Instrument)
    assert instrument.name == NAME
    assert instrument.modalities == ("beps_loop",)
    assert instrument.info("beps_loop").length == 32


def test_measure_returns_matching_finite_measurement(instrument: Instrument) -> None:
    req = _request()
    m = instrument.measure(req)
    assert isinstance(m, Measurement)
    assert (m.step, m.instrument, m.modality, m.location) == (4, NAME, "beps_loop", req.location)
    assert m.signal.shape == (32,)
    assert m.signal.dtype == np.float64
    assert np.all(np.isfinite(m.signal))
    assert m.t_start <= m.t_end


@pytest.mark.parametrize("loc", [Location(16, 0), Location(0, 16), Location(-1, 3)])
def test_off_sample_rejected(instrument: Instrument, loc: Location) -> None:
    with pytest.raises(InstrumentError, match="off the sample"):
        instrument.measure(_request(loc))


def test_unknown_modality_rejected(instrument: Instrument) -> None:
    with pytest.raises(InstrumentError, match="raman"):
        instrument.measure(_request(modality="raman"))
    with pytest.raises(InstrumentError, match="raman"):
        instrument.info("raman")


def test_wrong_instrument_name_rejected(instrument: Instrument) -> None:
    req = MeasurementRequest(0, "other", "beps_loop", Location(1, 1), seed=1)
    with pytest.raises(InstrumentError, match="other"):
        instrument.measure(req)


def test_same_request_same_signal(factory: Callable[[], Instrument]) -> None:
    first = factory()
    a = first.measure(_request())
    first.measure(_request(Location(1, 1), step=5))  # state must not leak between requests
    np.testing.assert_array_equal(a.signal, first.measure(_request()).signal)
    np.testing.assert_array_equal(a.signal, factory().measure(_request()).signal)


@pytest.mark.parametrize("loc", [Location(0, 0), Location(15, 15), Location(9, 2)])
def test_expected_cost_matches_measurement(instrument: Instrument, loc: Location) -> None:
    cost = instrument.expected_cost("beps_loop", loc)
    assert cost >= 0
    assert instrument.measure(_request(loc)).cost == pytest.approx(cost)
