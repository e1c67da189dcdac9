"""Dwell time as a request param of the simulated microscope (docs/fidelity.md).

``options: {dwell: [...], overhead: o}`` offers relative dwell times: a request's ``dwell``
``d`` takes ``o + d`` reference dwells, so it costs ``(o + d) / (o + 1)`` times the spec's cost,
and under the noise wrapper it has noise std ``sigma / sqrt(d)``; without the option nothing
changes; a dwell not offered is refused with one sentence.
"""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments import (
    DwellingInstrument,
    Dwells,
    Priced,
    SimulatedInstrument,
    build_instrument,
    pricing_of,
    synthetic_film,
    unwrap,
)
from coscope.instruments.base import check_params
from coscope.instruments.pricing import PriceQuery
from coscope.types import Location, MeasurementRequest

FILM = synthetic_film(size=8, seed=0)
DWELL = [0.25, 1.0, 4.0]


HERE = Location(2, 3)


def _req(**params: object) -> MeasurementRequest:
    return MeasurementRequest(1, "afm", "beps_loop", HERE, seed=77, params=dict(params))


def _stack(dwell: list[float] | None, noise: float = 0.05, cost: float = 2.0, **options: object):
    if dwell is not None:
        options["dwell"] = dwell
    return build_instrument("afm", FILM, cost=cost, noise=noise, options=options)


def test_noise_std_scales_as_one_over_sqrt_dwell_and_price_as_overhead_plus_dwell() -> None:
    stack = _stack(DWELL)  # overhead 1.0 by default
    assert isinstance(unwrap(stack), Dwells) and isinstance(unwrap(stack), Priced)
    truth = FILM.signal("beps_loop", Location(2, 3))
    residual = {d: stack.measure(_req(dwell=d)).signal - truth for d in DWELL}
    # one noise stream per request seed: a 4x dwell halves every deviate, a 1/4 doubles it
    np.testing.assert_allclose(residual[4.0], residual[1.0] / 2.0, rtol=1e-12)
    np.testing.assert_allclose(residual[0.25], residual[1.0] * 2.0, rtol=1e-12)
    expected = {0.25: 2.0 * 1.25 / 2.0, 1.0: 2.0, 4.0: 2.0 * 5.0 / 2.0}  # cost (1 + d) / 2
    for d in DWELL:
        assert stack.measure(_req(dwell=d)).cost == pytest.approx(expected[d])
        query = PriceQuery("afm", "beps_loop", Location(2, 3), {"dwell": d})
        assert pricing_of(stack).price(query) == pytest.approx(expected[d])
    assert pricing_of(stack).floor(["beps_loop"]) == pytest.approx(expected[0.25])


@pytest.mark.parametrize(("overhead", "price"), [(0.0, 8.0), (3.0, 3.5)])
def test_the_overhead_is_the_fixed_part_of_the_price(overhead: float, price: float) -> None:
    stack = _stack(DWELL, overhead=overhead)
    query = PriceQuery("afm", "beps_loop", HERE, {"dwell": 4.0})
    assert pricing_of(stack).price(query) == pytest.approx(price)  # 2 x (o + 4) / (o + 1)
    assert pricing_of(stack).price(PriceQuery("afm", "beps_loop", HERE, {})) == 2.0


def test_without_the_option_or_at_dwell_one_nothing_changes() -> None:
    plain, dwelling = _stack(None), _stack(DWELL)
    assert type(unwrap(plain)) is SimulatedInstrument
    assert not isinstance(unwrap(plain), Priced)
    before = plain.measure(_req())
    for request in (_req(), _req(dwell=1.0)):
        after = dwelling.measure(request)
        np.testing.assert_array_equal(after.signal, before.signal)
        assert after.cost == before.cost == 2.0
    with pytest.raises(InstrumentError, match="not accepted"):
        plain.measure(_req(dwell=1.0))  # a dwell on an instrument offering none: refused


@pytest.mark.parametrize("bad", [2.0, "long", True, None])
def test_a_dwell_not_offered_is_refused_with_one_sentence(bad: object) -> None:
    base = DwellingInstrument("afm", FILM, dwell=DWELL)
    with pytest.raises(InstrumentError) as info:
        check_params(base, {"dwell": bad})
    text = str(info.value)
    assert text.count(". ") == 0 and text.endswith(".")
    assert "dwell" in text and "[0.25, 1.0, 4.0]" in text
    with pytest.raises(InstrumentError, match="not offered"):
        _stack(DWELL).measure(_req(dwell=bad))


def test_without_dwell_one_offered_a_request_gets_the_middle_dwell() -> None:
    base = DwellingInstrument("afm", FILM, dwell=[0.5, 2.0, 8.0], overhead=2.0)
    check_params(base, {})
    assert base.dwell({}) == 2.0
    assert base.relative_price("beps_loop", Location(0, 0), {}) == pytest.approx(4.0 / 3.0)
    assert base.lowest_relative_price() == pytest.approx(2.5 / 3.0)
    alone = DwellingInstrument("afm", FILM, dwell=[0.25])  # a plain policy measures at 0.25
    assert alone.dwell({}) == 0.25


@pytest.mark.parametrize("bad", [[], [0.0, 1.0], [-1.0], ["x"], [float("inf")]])
def test_bad_dwell_options_are_a_config_error(bad: list) -> None:
    with pytest.raises(ConfigError, match="options.dwell"):
        _stack(bad)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "long", True])
def test_a_bad_overhead_or_one_without_dwell_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="options.overhead"):
        _stack(DWELL, overhead=bad)
    with pytest.raises(ConfigError, match="add options.dwell"):
        _stack(None, overhead=1.0)
