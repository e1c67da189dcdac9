"""One price function: told to the agent, charged by the instrument, whatever the wrapper order."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from coscope.campaign.context import CampaignContext
from coscope.config import parse_spec
from coscope.errors import InstrumentError
from coscope.infra.compose import agent_from_spec, sample_from_spec
from coscope.infra.tracking import NullTracker
from coscope.instruments import (
    Instrument,
    PriceQuery,
    WithCost,
    WithLatency,
    WithNoise,
    build_base,
    build_sample,
    instrument_pricing,
    pricing_of,
)
from coscope.storage import TraceStore
from coscope.types import Location, MeasurementRequest

THEORY = build_sample(
    "with_theory",
    {
        "base": {"kind": "synthetic_film", "params": {"size": 10, "n_voltage": 16}},
        "theory": {"theory_lattice": "beps_loop"},
    },
    0,
)
LIBRARY = build_sample("combinatorial_library", {"members": 16, "pixel_size_um": 100.0}, 0)
Wrap = Callable[[Instrument], Instrument]


def _wrappers(cost: float, travel: float, pixel: float) -> list[Wrap]:
    return [
        lambda i: WithCost(i, cost, travel_cost_per_um=travel, pixel_size_um=pixel),
        lambda i: WithNoise(i, 0.05),
        lambda i: WithLatency(i, 0.5, time_scale=0.0),
    ]


def _stack(base: Instrument, order: tuple[Wrap, ...]) -> Instrument:
    for wrap in order:
        base = wrap(base)
    return base


LATTICE_OPTIONS = {"sizes": [8, 16, 32]}


def _lattice() -> Instrument:
    return build_base(
        "sim", THEORY, kind="theory_lattice", modalities=["theory_lattice"], options=LATTICE_OPTIONS
    )


@pytest.mark.parametrize("fidelity", [8, 16, 32])
def test_lattice_price_is_the_same_in_every_wrapper_order(fidelity: int) -> None:
    request = MeasurementRequest(
        3, "sim", "theory_lattice", Location(2, 5), 7, {"fidelity": fidelity}
    )
    told = instrument_pricing(_lattice(), THEORY, 10.0).price(PriceQuery.of(request))
    assert told == pytest.approx(10.0 * (fidelity / 32) ** 2)  # fidelity 8: 0.625
    for order in itertools.permutations(_wrappers(10.0, 0.0, THEORY.pixel_size_um)):
        inst = _stack(_lattice(), order)
        assert inst.measure(request).cost == pytest.approx(told)
        assert pricing_of(inst).price(PriceQuery.of(request)) == pytest.approx(told)


def test_travel_is_priced_the_same_in_every_wrapper_order() -> None:
    base = lambda: build_base("lib", LIBRARY, modalities=["raman"])  # noqa: E731
    moved = MeasurementRequest(1, "lib", "raman", Location(3, 3), 0, {"stage_from": [0, 3]})
    told = instrument_pricing(base(), LIBRARY, 2.0, 0.01).price(PriceQuery.of(moved))
    assert told == pytest.approx(2.0 + 0.01 * 100.0 * 3)
    for order in itertools.permutations(_wrappers(2.0, 0.01, LIBRARY.pixel_size_um)):
        assert _stack(base(), order).measure(moved).cost == pytest.approx(told)


def test_an_unknown_fidelity_is_refused_when_priced_and_when_measured() -> None:
    pricing = instrument_pricing(_lattice(), THEORY, 10.0)
    query = PriceQuery("sim", "theory_lattice", Location(0, 0), {"fidelity": 12})
    with pytest.raises(
        InstrumentError, match=r"fidelity 12 is not offered; use one of \[8, 16, 32\]"
    ):
        pricing.price(query)
    with pytest.raises(InstrumentError, match="fidelity 12"):
        WithCost(_lattice(), 10.0).measure(
            MeasurementRequest(0, "sim", "theory_lattice", Location(0, 0), 1, {"fidelity": 12})
        )
    with pytest.raises(InstrumentError, match="other"):
        pricing.price(PriceQuery("other", "theory_lattice", Location(0, 0)))


def test_campaign_context_tells_the_agent_what_the_instrument_charges(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "price",
            "sample": {
                "kind": "with_theory",
                "params": {
                    "base": {"kind": "synthetic_film", "params": {"size": 10, "n_voltage": 16}},
                    "theory": {"theory_lattice": "beps_loop"},
                },
            },
            "instruments": [
                {"name": "afm", "modalities": ["beps_loop"], "cost": 1.0},
                {
                    "name": "sim",
                    "kind": "theory_lattice",
                    "modalities": ["theory_lattice"],
                    "cost": 10.0,
                    "options": LATTICE_OPTIONS,
                },
            ],
            "run_dir": str(tmp_path / "run"),
        }
    )
    sample = sample_from_spec(spec.sample, spec.seed)
    store = TraceStore.create(
        spec.resolved_store(),
        campaign=spec.to_json_dict(),
        modalities=sample.modalities,
        sample_shape=sample.shape,
    )
    ctx = CampaignContext(spec, sample, store, agent_from_spec(spec, sample), NullTracker())
    loc = Location(4, 4)
    assert ctx.expected_cost("sim", "theory_lattice", loc, {"fidelity": 8}) == pytest.approx(0.625)
    assert ctx.expected_cost("sim", "theory_lattice", loc) == pytest.approx(10.0)  # top fidelity
    assert ctx.expected_cost("afm", "beps_loop", loc) == pytest.approx(1.0)
    charged = WithNoise(WithCost(_lattice(), 10.0), 0.1).measure(
        MeasurementRequest(0, "sim", "theory_lattice", loc, 5, {"fidelity": 8})
    )
    assert charged.cost == pytest.approx(0.625)
    instruments = [i.model_copy(update={"cost": 4.0}) for i in spec.instruments]
    ctx.spec = spec.model_copy(update={"instruments": instruments})  # as a costs intervention
    assert ctx.expected_cost("sim", "theory_lattice", loc, {"fidelity": 8}) == pytest.approx(0.25)
    # the budget checks read the same price model: the cheapest request is the smallest
    # lattice, one more request is reserved at the reference (top-fidelity) price
    assert ctx.pricing("sim").floor(["theory_lattice"]) == pytest.approx(0.25)
    assert ctx.cheapest_cost("sim") == 0.0  # the agent proposes no modality there
    assert ctx.reserved_cost("sim") == pytest.approx(4.0)
    assert ctx.cheapest_cost("afm") == pytest.approx(4.0)
    store.close()


def test_price_floor_bounds_every_request_from_below() -> None:
    pricing = instrument_pricing(_lattice(), THEORY, 10.0, travel_cost_per_um=0.5)
    floor = pricing.floor(["theory_lattice"])
    assert floor == pytest.approx(10.0 * (8 / 32) ** 2)
    for fidelity in (8, 16, 32):
        for origin in (None, Location(0, 0), Location(9, 9)):
            price = pricing.quote(
                "sim", "theory_lattice", Location(3, 4), {"fidelity": fidelity}, origin
            )
            assert price >= floor
    callable_cost = instrument_pricing(_lattice(), THEORY, lambda m, x: 1.0 + x.row)
    assert callable_cost.floor(["theory_lattice"]) == 0.0  # unknown least: never refuses early
    assert pricing.floor([]) == 0.0
