"""Instruments: the protocol, samples, synthetic physics, simulated instruments, wrappers.

Import from here: ``from coscope.instruments import Instrument, build_instrument``.
"""

from __future__ import annotations

from coscope.instruments.base import Instrument, validate_request, validate_signal
from coscope.instruments.dataset_twin import dataset_sample
from coscope.instruments.library import combinatorial_library
from coscope.instruments.registry import build_instrument, instrument_kinds, register_instrument
from coscope.instruments.sample import (
    Sample,
    build_sample,
    register_sample,
    sample_kinds,
    synthetic_film,
)
from coscope.instruments.simulated import SimulatedInstrument
from coscope.instruments.theory import TheoryInstrument  # registers the theory kinds
from coscope.instruments.wrappers import InstrumentWrapper, WithCost, WithLatency, WithNoise

__all__ = [
    "Instrument",
    "InstrumentWrapper",
    "Sample",
    "SimulatedInstrument",
    "TheoryInstrument",
    "WithCost",
    "WithLatency",
    "WithNoise",
    "build_instrument",
    "build_sample",
    "combinatorial_library",
    "dataset_sample",
    "instrument_kinds",
    "register_instrument",
    "register_sample",
    "sample_kinds",
    "synthetic_film",
    "validate_request",
    "validate_signal",
]
