"""The instrument contract (coscope.instruments.contract) over every registered kind.

Each case is one kind on one sample, bare or wrapped; every case runs every check, and every
kind registered by coscope has at least one case (a new kind fails here until it gets one).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from coscope.errors import InstrumentError
from coscope.instruments import (
    Instrument,
    Pricing,
    SimulatedInstrument,
    WithCost,
    WithLatency,
    WithNoise,
    build_instrument,
    build_sample,
    instrument_kinds,
    synthetic_film,
    validate_request,
    validate_signal,
)
from coscope.instruments.base import check_modality
from coscope.instruments.contract import CHECKS, ContractCase, check_instrument
from coscope.instruments.registry import INSTRUMENTS, SPACE_INSTRUMENTS, reads_sample
from coscope.instruments.sample import Sample
from coscope.storage.datasets import Dataset, write_dataset
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

FILM = synthetic_film(size=16, seed=3, n_voltage=32)
LIBRARY = build_sample("combinatorial_library", {"members": 16, "n_raman": 32}, 0)
THEORY = build_sample(
    "with_theory",
    {
        "base": {"kind": "synthetic_film", "params": {"size": 12, "n_voltage": 16}},
        "theory": {"theory_lgd": "beps_loop", "theory_lattice": "beps_loop"},
    },
    1,
)
CALIBRATE = {"coercive_field": [1.0, 5.0]}
BOX = build_sample("box", {"capacity": 16}, 0)


def _req(name: str, modality: str, loc: Location, step: int = 4, **params) -> MeasurementRequest:
    return MeasurementRequest(step, name, modality, loc, seed=1234, params=params)


def _cost_by_row(modality: str, location: Location) -> float:
    return 1.0 + 0.1 * location.row


def _dataset_sample(root: Path) -> Sample:
    rng = np.random.default_rng(0)
    voltage = np.linspace(-5.0, 5.0, 12)
    ds = Dataset(
        name="rec",
        source="test",
        structure={"pfm": rng.normal(size=(7, 9))},
        modalities={"beps_loop": ModalityInfo("beps_loop", voltage, "voltage", "V", "a.u.")},
        signals={"beps_loop": rng.normal(size=(7, 9, voltage.size))},
        pixel_size_um=0.1,
    )
    path = root / "rec.zarr"
    if not path.exists():
        write_dataset(ds, path)
    return build_sample("dataset", {"path": str(path)}, 0)


def _film(make: Callable[[], object], **params) -> Callable[[Path], ContractCase]:
    here, there = _req("afm", "beps_loop", Location(5, 7)), _req("afm", "beps_loop", Location(9, 2))
    moved = _req("afm", "beps_loop", Location(15, 15), step=5, stage_from=[0, 0])
    return lambda root: ContractCase(make, [here, there, moved], FILM.shape)  # type: ignore[arg-type]


def _lattice(root: Path) -> ContractCase:
    def make():
        return build_instrument(
            "sim",
            THEORY,
            kind="theory_lattice",
            modalities=["theory_lattice"],
            cost=10.0,
            noise=0.01,
            options={"sizes": [4, 8], "theta": {"disorder": 0.2}, "calibrate": CALIBRATE},
        )

    loc = Location(3, 4)
    requests = [
        _req("sim", "theory_lattice", loc, fidelity=4, theta={"coercive_field": 2.0}),
        _req("sim", "theory_lattice", loc, step=5, fidelity=8),
        _req("sim", "theory_lattice", Location(11, 0), step=6),
    ]
    bad = [{"fidelity": 6}, {"fidelity": True}, {"theta": {"nope": 1.0}}, {"theta": 3.0}]
    return ContractCase(make, requests, THEORY.shape, bad)


def _lgd(root: Path, wrapped: bool) -> ContractCase:
    def make():
        if not wrapped:
            return INSTRUMENTS.get("theory_lgd")("lgd", THEORY, ["theory_lgd"])
        return build_instrument(
            "lgd",
            THEORY,
            kind="theory_lgd",
            modalities=["theory_lgd"],
            cost={"theory_lgd": 3.0},
            latency_s=0.001,
            time_scale=0.0,
            options={"calibrate": CALIBRATE},
        )

    requests = [
        _req("lgd", "theory_lgd", Location(2, 2), theta={"imprint": 0.5}),
        _req("lgd", "theory_lgd", Location(0, 11), step=7),
    ]
    return ContractCase(make, requests, THEORY.shape, [{"theta": {"gamma": -1.0}}, {"fidelity": 8}])


def _library(root: Path) -> ContractCase:
    def make():
        return build_instrument(
            "lib",
            LIBRARY,
            modalities=["raman", "pfm_loop"],
            cost={"raman": 10.0, "pfm_loop": 1.0},
            noise=0.05,
            travel_cost_per_um=0.001,
        )

    requests = [
        _req("lib", "raman", Location(1, 2)),
        _req("lib", "pfm_loop", Location(3, 3), step=5, stage_from=[0, 3]),
    ]
    return ContractCase(make, requests, LIBRARY.shape)


def _twin(root: Path) -> ContractCase:
    sample = _dataset_sample(root)

    def make():
        return build_instrument("twin", sample, cost=2.0, noise=0.02, latency_s=0.0)

    requests = [
        _req("twin", "beps_loop", Location(6, 8)),
        _req("twin", "beps_loop", Location(0, 0)),
    ]
    return ContractCase(make, requests, sample.shape)


def _synthetic(root: Path, wrapped: bool) -> ContractCase:
    def make():
        if not wrapped:
            return INSTRUMENTS.get("synthetic")("fn", BOX, ["value"], function="branin")
        return build_instrument(
            "fn",
            BOX,
            kind="synthetic",
            modalities=["value"],
            cost=2.5,
            latency_s=0.001,
            time_scale=0.0,
            options={"function": "hartmann6", "noise_sd": 0.1},
        )

    x = [0.2, 0.4] if not wrapped else [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    requests = [
        _req("fn", "value", Location(3, 0), x=x),
        _req("fn", "value", Location(15, 0), step=6, x=[v / 2 for v in x]),
    ]
    bad = [{"x": [1.0]}, {"x": [0.0] * (len(x) - 1) + [float("nan")]}, {"x": "here"}]
    return ContractCase(make, requests, BOX.shape, bad)


def _dwelling(root: Path) -> ContractCase:
    def make():
        return build_instrument(
            "afm", FILM, cost=2.0, noise=0.05, options={"dwell": [0.25, 1.0, 4.0]}
        )

    requests = [
        _req("afm", "beps_loop", Location(5, 7), dwell=0.25),
        _req("afm", "beps_loop", Location(9, 2), step=5, dwell=4.0),
        _req("afm", "beps_loop", Location(1, 1), step=6),
    ]
    bad = [{"dwell": 2.0}, {"dwell": True}, {"dwell": "long"}]
    return ContractCase(make, requests, FILM.shape, bad)


CASES: dict[str, tuple[str, Callable[[Path], ContractCase]]] = {
    "simulated": ("simulated", _film(lambda: SimulatedInstrument("afm", FILM))),
    "latency": (
        "simulated",
        _film(lambda: WithLatency(SimulatedInstrument("afm", FILM), 0.01, time_scale=0.0)),
    ),
    "noise": ("simulated", _film(lambda: WithNoise(SimulatedInstrument("afm", FILM), 0.05))),
    "noise_absolute": (
        "simulated",
        _film(lambda: WithNoise(SimulatedInstrument("afm", FILM), 0.1, relative=False)),
    ),
    "cost_callable": (
        "simulated",
        _film(lambda: WithCost(SimulatedInstrument("afm", FILM), _cost_by_row)),
    ),
    "cost_travel": (
        "simulated",
        _film(
            lambda: WithNoise(
                WithCost(
                    SimulatedInstrument("afm", FILM),
                    {"beps_loop": 4.0},
                    travel_cost_per_um=2.0,
                    pixel_size_um=0.05,
                ),
                0.02,
            )
        ),
    ),
    "registry_film": (
        "simulated",
        _film(
            lambda: build_instrument(
                "afm", FILM, latency_s={"beps_loop": 0.0}, cost=3.0, noise=0.05
            )
        ),
    ),
    "simulated_dwell": ("simulated", _dwelling),
    "dataset_twin": ("simulated", _twin),
    "library": ("simulated", _library),
    "theory_lgd_bare": ("theory_lgd", lambda root: _lgd(root, wrapped=False)),
    "theory_lgd": ("theory_lgd", lambda root: _lgd(root, wrapped=True)),
    "theory_lattice": ("theory_lattice", _lattice),
    "synthetic_bare": ("synthetic", lambda root: _synthetic(root, wrapped=False)),
    "synthetic": ("synthetic", lambda root: _synthetic(root, wrapped=True)),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contract")


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_contract(case: str, check: str, root: Path) -> None:
    CHECKS[check](CASES[case][1](root))


ELSEWHERE = {"epics": "tests/instruments/test_epics.py (against a caproto IOC)"}
"""Kinds whose contract cases run in another module."""


def test_every_registered_kind_has_a_case() -> None:
    factories = {
        k: (INSTRUMENTS if reads_sample(k) else SPACE_INSTRUMENTS).get(k)
        for k in instrument_kinds()
    }
    ours = {k for k, f in factories.items() if f.__module__.startswith("coscope.")}
    assert ours <= {kind for kind, _ in CASES.values()} | set(ELSEWHERE)


class _Jittery(SimulatedInstrument):
    """Ignores the request seed."""

    def measure(self, request: MeasurementRequest) -> Measurement:
        m = super().measure(request)
        return dataclasses.replace(m, signal=m.signal + np.random.default_rng().normal())


class _Overcharging(SimulatedInstrument):
    """Charges more than its price."""

    def measure(self, request: MeasurementRequest) -> Measurement:
        return dataclasses.replace(super().measure(request), cost=3.0)


class _Lax(SimulatedInstrument):
    """Skips the request checks."""

    def measure(self, request: MeasurementRequest) -> Measurement:
        signal = self.sample.signal(request.modality, Location(0, 0))
        return Measurement(
            request.step, self.name, request.modality, request.location, signal, 1.0, 0.0, 0.0
        )


@pytest.mark.parametrize(
    ("broken", "words"),
    [(_Jittery, "deterministic"), (_Overcharging, "price"), (_Lax, "wrong instrument")],
)
def test_a_broken_instrument_fails_the_contract(root: Path, broken: type, words: str) -> None:
    """The suite catches what it claims to."""
    case = _film(lambda: broken("afm", FILM))(root)
    with pytest.raises(AssertionError, match=words):
        check_instrument(case)


class DwellSpectrometer:
    """A plug-in instrument as a user would write one: price and noise set by a dwell time.

    Declares ``Priced`` (``dwell_s / 1 s``), ``ParameterisedRequests`` (``dwell_s``) and
    ``Stoppable``, and nothing is asked of it beyond those and the protocol.
    """

    def __init__(self, name: str, sample: Sample) -> None:
        self.name, self.sample, self.modalities = name, sample, ("raman",)
        self.stops = 0

    def info(self, modality: str) -> ModalityInfo:
        check_modality(self, modality)
        return self.sample.info(modality)

    def request_params(self) -> dict[str, str]:
        return {"dwell_s": "seconds per spectrum, > 0 (default 1)"}

    def check_params(self, params) -> None:
        dwell = params.get("dwell_s", 1.0)
        if isinstance(dwell, bool) or not isinstance(dwell, int | float) or not dwell > 0:
            raise InstrumentError(f"dwell_s={dwell!r} is invalid: give seconds > 0.")

    def relative_price(self, modality: str, location: Location, params) -> float:
        self.check_params(params)
        return float(params.get("dwell_s", 1.0))

    def stop(self) -> None:
        self.stops += 1

    def measure(self, request: MeasurementRequest) -> Measurement:
        validate_request(self, self.sample.shape, request)
        clean = self.sample.signal(request.modality, request.location)
        sigma = 0.05 / np.sqrt(float(request.params.get("dwell_s", 1.0)))
        noise = sigma * np.random.default_rng(request.seed).standard_normal(clean.shape)
        signal = validate_signal(self.info(request.modality), clean + noise)
        cost = Pricing.of(self)(request)
        return Measurement(
            request.step, self.name, request.modality, request.location, signal, cost, 0.0, 0.0
        )


def _spectrometer_case(make: Callable[[], Instrument]) -> ContractCase:
    requests = [
        _req("xrs", "raman", Location(1, 1)),
        _req("xrs", "raman", Location(2, 3), step=5, dwell_s=0.25),
        _req("xrs", "raman", Location(3, 0), step=6, dwell_s=4, stage_from=[0, 0]),
    ]
    return ContractCase(make, requests, LIBRARY.shape, [{"dwell_s": 0}, {"dwell_s": "long"}])


def test_a_plugin_instrument_passes_the_contract_bare_and_in_any_stack() -> None:
    check_instrument(_spectrometer_case(lambda: DwellSpectrometer("xrs", LIBRARY)))
    wraps: list[Callable[[Instrument], Instrument]] = [
        lambda i: WithCost(i, 5.0, travel_cost_per_um=0.001, pixel_size_um=LIBRARY.pixel_size_um),
        lambda i: WithNoise(i, 0.01),
        lambda i: WithLatency(i, 1.0, time_scale=0.0),
    ]
    request = _spectrometer_case(lambda: DwellSpectrometer("xrs", LIBRARY)).requests[2]
    travel = 0.001 * LIBRARY.pixel_size_um * 3.0
    for order in itertools.permutations(wraps):

        def make(order=order) -> Instrument:
            inst: Instrument = DwellSpectrometer("xrs", LIBRARY)
            for wrap in order:
                inst = wrap(inst)
            return inst

        check_instrument(_spectrometer_case(make))
        assert make().measure(request).cost == pytest.approx(5.0 * 4 + travel)
