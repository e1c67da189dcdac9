"""Instrument kinds by name, and the one function that composes an instrument stack.

A kind is a factory ``f(name, sample, modalities, **options) -> Instrument`` registered with
:func:`register_instrument`. :func:`build_base` builds the base instrument of a kind;
:func:`build_instrument` wraps it in the cost (price), noise and latency wrappers, so every
kind gets them the same way; :func:`instrument_pricing` is the price model of the same stack
without building the wrappers (what the deciding agent is told).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coscope.catalog import INSTRUMENT_KINDS
from coscope.errors import ConfigError
from coscope.instruments.base import Instrument
from coscope.instruments.faults import FaultPlan, WithFaults
from coscope.instruments.pricing import CostModel, Pricing, WithCost
from coscope.instruments.resilience import RetryPolicy, WithResilience
from coscope.instruments.sample import Sample
from coscope.instruments.simulated import SimulatedInstrument
from coscope.instruments.wrappers import WithLatency, WithNoise
from coscope.registry import Registry

InstrumentFactory = Callable[..., Instrument]
INSTRUMENTS: Registry[InstrumentFactory] = Registry("instrument kind", INSTRUMENT_KINDS)
register_instrument = INSTRUMENTS.register
"""Decorator registering ``f(name, sample, modalities, **options) -> Instrument`` as a kind."""
instrument_kinds = INSTRUMENTS.names


@register_instrument("simulated")
def _simulated(
    name: str, sample: Sample, modalities: Sequence[str] | None = None
) -> SimulatedInstrument:
    """Noise-free instrument reading the sample's ground truth."""
    return SimulatedInstrument(name, sample, modalities)


def build_base(
    name: str,
    sample: Sample,
    *,
    kind: str = "simulated",
    modalities: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Instrument:
    """The base instrument of ``kind`` (no wrappers); ConfigError on an unknown kind/option."""
    factory = INSTRUMENTS.get(kind)
    opts = dict(options or {})
    check_options(name, kind, sample, modalities, opts)
    return factory(name, sample, modalities, **opts)


def instrument_pricing(
    base: Instrument, sample: Sample, cost: CostModel = 1.0, travel_cost_per_um: float = 0.0
) -> Pricing:
    """The price model :func:`build_instrument` charges by, for a :func:`build_base` base."""
    return Pricing.of(
        base, cost, travel_cost_per_um=travel_cost_per_um, pixel_size_um=sample.pixel_size_um
    )


def build_instrument(
    name: str,
    sample: Sample,
    *,
    kind: str = "simulated",
    modalities: Sequence[str] | None = None,
    latency_s: float | Mapping[str, float] = 0.0,
    cost: CostModel = 1.0,
    noise: float = 0.0,
    time_scale: float = 1.0,
    options: Mapping[str, Any] | None = None,
    travel_cost_per_um: float = 0.0,
    faults: FaultPlan | None = None,
    retry: RetryPolicy | None = None,
) -> Instrument:
    """Build an instrument of ``kind`` wrapped as ``WithLatency(WithNoise(WithCost(base)))``.

    Args:
        name: Instrument name.
        sample: Sample it measures.
        kind: Registered kind (see :func:`instrument_kinds`).
        modalities: Modalities offered (default: the kind's default).
        latency_s: Seconds per measurement, one value or per modality; 0 adds no wrapper.
        cost: Price of the reference request: value, per-modality mapping, or
            ``f(modality, location)``; a :class:`~coscope.instruments.base.Priced` base
            scales it per request.
        noise: Relative Gaussian noise (fraction of peak-to-peak); 0 adds no wrapper.
        time_scale: Factor applied to every latency.
        options: Extra keyword arguments for the kind's factory.
        travel_cost_per_um: Stage travel cost per micrometre charged from the request's
            ``stage_from`` (part of the price, :mod:`coscope.instruments.pricing`).
        faults: Injected faults, just around the base instrument
            (:class:`~coscope.instruments.faults.WithFaults`); None adds no wrapper.
        retry: Timeout and retries around the whole stack
            (:class:`~coscope.instruments.resilience.WithResilience`); None adds no wrapper.

    Raises:
        ConfigError: Unknown kind or invalid settings.
    """
    inst = build_base(name, sample, kind=kind, modalities=modalities, options=options)
    if faults is not None:
        inst = WithFaults(inst, faults)
    inst = WithCost(
        inst, cost, travel_cost_per_um=travel_cost_per_um, pixel_size_um=sample.pixel_size_um
    )
    if noise:
        inst = WithNoise(inst, noise, relative=True)
    has_latency = any(latency_s.values()) if isinstance(latency_s, Mapping) else latency_s > 0
    if has_latency:
        inst = WithLatency(inst, latency_s, time_scale)
    if retry is not None:
        inst = WithResilience(inst, retry)
    return inst


def check_options(
    name: str,
    kind: str,
    sample: Sample,
    modalities: Sequence[str] | None,
    options: Mapping[str, Any] | None,
) -> None:
    """ConfigError unless the kind's factory takes ``options`` (checked without building it)."""
    factory = INSTRUMENTS.get(kind)
    opts = dict(options or {})
    try:
        inspect.signature(factory).bind(name, sample, modalities, **opts)
    except TypeError as exc:
        raise ConfigError(
            f"instrument {name!r} of kind {kind!r} got invalid options {sorted(opts)} ({exc}): "
            "remove them or use the kind's documented options."
        ) from None
