"""Instruments: the protocol and capabilities, samples, physics, simulators, wrappers, prices.

Import from here: ``from coscope.instruments import Instrument, build_instrument``.
"""

from __future__ import annotations

from coscope.instruments.base import (
    Calibratable,
    Connects,
    Dwells,
    Instrument,
    MeasuresPoints,
    ParameterisedRequests,
    Priced,
    PriceFloor,
    Stoppable,
    validate_request,
    validate_signal,
)
from coscope.instruments.dataset_twin import dataset_sample
from coscope.instruments.epics import EpicsInstrument  # registers the epics kind
from coscope.instruments.library import combinatorial_library
from coscope.instruments.pricing import PriceFunction, PriceQuery, Pricing, WithCost, pricing_of
from coscope.instruments.registry import (
    build_base,
    build_instrument,
    instrument_kinds,
    instrument_pricing,
    register_instrument,
    register_space_instrument,
)
from coscope.instruments.sample import (
    Sample,
    build_sample,
    register_sample,
    sample_kinds,
    synthetic_film,
)
from coscope.instruments.simulated import DwellingInstrument, SimulatedInstrument
from coscope.instruments.synthetic import SyntheticFunction  # registers box, synthetic
from coscope.instruments.theory import TheoryInstrument  # registers the theory kinds
from coscope.instruments.wrappers import InstrumentWrapper, WithLatency, WithNoise, unwrap

__all__ = [
    "Calibratable",
    "Connects",
    "DwellingInstrument",
    "Dwells",
    "EpicsInstrument",
    "Instrument",
    "InstrumentWrapper",
    "MeasuresPoints",
    "ParameterisedRequests",
    "PriceFunction",
    "PriceQuery",
    "PriceFloor",
    "Priced",
    "Pricing",
    "Sample",
    "SimulatedInstrument",
    "Stoppable",
    "SyntheticFunction",
    "TheoryInstrument",
    "WithCost",
    "WithLatency",
    "WithNoise",
    "build_base",
    "build_instrument",
    "build_sample",
    "combinatorial_library",
    "dataset_sample",
    "instrument_kinds",
    "instrument_pricing",
    "pricing_of",
    "register_instrument",
    "register_space_instrument",
    "register_sample",
    "sample_kinds",
    "synthetic_film",
    "unwrap",
    "validate_request",
    "validate_signal",
]
