"""Wrapper behaviour: latency sleeps, noise seeded per request, cost models, bad signals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import (
    PriceQuery,
    SimulatedInstrument,
    WithCost,
    WithLatency,
    WithNoise,
    build_instrument,
    synthetic_film,
)
from coscope.types import Location, Measurement, MeasurementRequest

SAMPLE = synthetic_film(size=12, seed=5, n_voltage=32)


def _req(seed: int = 11, loc: Location = Location(2, 3)) -> MeasurementRequest:  # noqa: B008
    return MeasurementRequest(0, "afm", "beps_loop", loc, seed)


class _Broken(SimulatedInstrument):
    """Returns a NaN in the signal: wrappers must refuse to pass it on."""

    def measure(self, request: MeasurementRequest) -> Measurement:
        m = super().measure(request)
        bad = m.signal.copy()
        bad[3] = np.nan
        return dataclasses.replace(m, signal=bad)


def test_latency_sleeps_at_least_the_scaled_time() -> None:
    inst = WithLatency(SimulatedInstrument("afm", SAMPLE), {"beps_loop": 0.1}, time_scale=0.5)
    assert inst.latency("beps_loop") == pytest.approx(0.05)
    m = inst.measure(_req())
    assert m.t_end - m.t_start >= 0.05


def test_latency_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="time_scale"):
        WithLatency(SimulatedInstrument("afm", SAMPLE), 1.0, time_scale=-1.0)
    with pytest.raises(ConfigError, match="latency"):
        WithLatency(SimulatedInstrument("afm", SAMPLE), {"raman": 1.0})


def test_noise_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    clean = SimulatedInstrument("afm", SAMPLE).measure(_req()).signal
    noisy = WithNoise(SimulatedInstrument("afm", SAMPLE), 0.05)
    a, b, c = (noisy.measure(_req(s)).signal for s in (11, 11, 12))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    resid = a - clean
    assert 0.01 < resid.std() / np.ptp(clean) < 0.1  # relative sigma = 0.05


def test_absolute_noise_scale() -> None:
    clean = SimulatedInstrument("afm", SAMPLE).measure(_req()).signal
    noisy = WithNoise(SimulatedInstrument("afm", SAMPLE), 2.0, relative=False)
    resid = np.concatenate([noisy.measure(_req(s)).signal - clean for s in range(20)])
    assert resid.std() == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize("wrap", [WithNoise, WithCost, WithLatency])
def test_nan_from_inner_is_rejected(wrap: type) -> None:
    arg = {WithNoise: 0.1, WithCost: 1.0, WithLatency: 0.0}[wrap]
    inst = wrap(_Broken("afm", SAMPLE), arg)
    with pytest.raises(InstrumentError, match="non-finite"):
        inst.measure(_req())


def test_callable_cost_and_bad_cost() -> None:
    inst = WithCost(SimulatedInstrument("afm", SAMPLE), lambda mod, loc: 1.0 + loc.col)
    assert inst.measure(_req(loc=Location(0, 4))).cost == 5.0
    bad = WithCost(SimulatedInstrument("afm", SAMPLE), lambda mod, loc: -1.0)
    with pytest.raises(InstrumentError, match="cost model"):
        bad.price(PriceQuery("afm", "beps_loop", Location(0, 0)))
    with pytest.raises(ConfigError, match="cost"):
        WithCost(SimulatedInstrument("afm", SAMPLE), -2.0)


def test_wrappers_only_wrap_instruments() -> None:
    with pytest.raises(ConfigError, match="wraps instruments"):
        WithNoise(object(), 0.1)  # type: ignore[arg-type]


def test_registry_composes_and_rejects_unknown_kind() -> None:
    inst = build_instrument("afm", SAMPLE, latency_s=0.01, time_scale=0.0, noise=0.1, cost=7.0)
    assert isinstance(inst, WithLatency) and isinstance(inst.inner, WithNoise)
    assert inst.measure(_req()).cost == 7.0
    plain = build_instrument("afm", SAMPLE)
    assert isinstance(plain, WithCost) and isinstance(plain.inner, SimulatedInstrument)
    with pytest.raises(ConfigError, match="simulated"):
        build_instrument("afm", SAMPLE, kind="dataset_twinn")
    with pytest.raises(ConfigError, match="invalid options"):
        build_instrument("afm", SAMPLE, options={"warp": 9})
    with pytest.raises(ConfigError, match="raman"):
        build_instrument("afm", SAMPLE, modalities=["raman"])
