"""Dwell time as a request param of the simulated microscope (docs/fidelity.md).

``options: {dwell: [...]}`` offers relative dwell times: a request's ``dwell`` ``d`` costs
``d`` times the spec's cost and, under the noise wrapper, has noise std ``sigma / sqrt(d)``;
without the option nothing changes; a dwell not offered is refused with one sentence.
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


def _stack(dwell: list[float] | None, noise: float = 0.05, cost: float = 2.0):
    options = {} if dwell is None else {"dwell": dwell}
    return build_instrument("afm", FILM, cost=cost, noise=noise, options=options)


def test_noise_std_scales_as_one_over_sqrt_dwell_and_price_as_dwell() -> None:
    stack = _stack(DWELL)
    assert isinstance(unwrap(stack), Dwells) and isinstance(unwrap(stack), Priced)
    truth = FILM.signal("beps_loop", Location(2, 3))
    residual = {d: stack.measure(_req(dwell=d)).signal - truth for d in DWELL}
    # one noise stream per request seed: a 4x dwell halves every deviate, a 1/4 doubles it
    np.testing.assert_allclose(residual[4.0], residual[1.0] / 2.0, rtol=1e-12)
    np.testing.assert_allclose(residual[0.25], residual[1.0] * 2.0, rtol=1e-12)
    for d in DWELL:
        assert stack.measure(_req(dwell=d)).cost == pytest.approx(2.0 * d)
        query = PriceQuery("afm", "beps_loop", Location(2, 3), {"dwell": d})
        assert pricing_of(stack).price(query) == pytest.approx(2.0 * d)
    assert pricing_of(stack).floor(["beps_loop"]) == pytest.approx(0.5)


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


def test_without_dwell_one_offered_a_request_must_name_its_dwell() -> None:
    base = DwellingInstrument("afm", FILM, dwell=[0.5, 2.0])
    with pytest.raises(InstrumentError, match="dwell 1.0 is not offered"):
        check_params(base, {})
    assert base.relative_price("beps_loop", Location(0, 0), {"dwell": 2.0}) == 2.0
    assert base.lowest_relative_price() == 0.5


@pytest.mark.parametrize("bad", [[], [0.0, 1.0], [-1.0], ["x"], [float("inf")]])
def test_bad_dwell_options_are_a_config_error(bad: list) -> None:
    with pytest.raises(ConfigError, match="options.dwell"):
        _stack(bad)
