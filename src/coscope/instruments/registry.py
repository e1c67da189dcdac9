"""Instrument kinds by name, and the one function that composes an instrument stack.

Two families of kinds, told apart by what their factory observes:

* a *simulator* reads a sample's ground truth: ``f(name, sample, modalities, **options)``,
  registered with :func:`register_instrument` (``simulated``, the theory simulators);
* an *instrument on a space* measures the real thing at the campaign's candidate locations:
  ``f(name, space, modalities, **options) -> Instrument`` with ``space`` the campaign's
  :class:`~coscope.spaces.Space` (coordinates in µm for grids) and ``modalities`` the tuple
  the spec names. Registered with :func:`register_space_instrument` (``epics``), named in a
  spec as ``"package.module:factory"``, or registered by an installed package under the
  entry-point group ``coscope.instruments`` (:mod:`coscope.plugins`).

:func:`build_base` builds the base instrument of a kind and checks what a factory returned
(an :class:`Instrument` of that name offering those modalities); :func:`build_instrument`
wraps it in the cost (price), noise and latency wrappers, so every kind gets them the same
way; :func:`instrument_pricing` is the price model of the same stack without building the
wrappers (what the deciding agent is told).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coscope.catalog import INSTRUMENT_KINDS
from coscope.errors import ConfigError, CoscopeError, InstrumentError
from coscope.instruments.base import Connects, Instrument
from coscope.instruments.faults import FaultPlan, WithFaults
from coscope.instruments.pricing import CostModel, Pricing, WithCost
from coscope.instruments.resilience import RetryPolicy, WithResilience
from coscope.instruments.sample import Sample
from coscope.instruments.simulated import DwellingInstrument, SimulatedInstrument
from coscope.instruments.wrappers import WithLatency, WithNoise
from coscope.plugins import entry_point_names, import_reference, is_reference, load_entry_point
from coscope.registry import Registry
from coscope.spaces import Space, space_of

InstrumentFactory = Callable[..., Instrument]
"""``f(name, space, modalities, **options) -> Instrument``: a kind measuring on a space."""
SimulatorFactory = Callable[..., Instrument]
"""``f(name, sample, modalities, **options) -> Instrument``: a kind reading a sample."""
INSTRUMENTS: Registry[SimulatorFactory] = Registry("instrument kind", INSTRUMENT_KINDS)
register_instrument = INSTRUMENTS.register
"""Decorator registering ``f(name, sample, modalities, **options) -> Instrument`` as a kind."""
SPACE_INSTRUMENTS: Registry[InstrumentFactory] = Registry("instrument kind", INSTRUMENT_KINDS)
register_space_instrument = SPACE_INSTRUMENTS.register
"""Decorator registering ``f(name, space, modalities, **options) -> Instrument`` as a kind."""
USER_KIND = "user instrument kind"
"""What a plug-in kind is called in messages."""


def instrument_kinds() -> tuple[str, ...]:
    """Registered kinds of both families, sorted (plug-ins named by reference not included)."""
    return tuple(sorted({*INSTRUMENTS.names(), *SPACE_INSTRUMENTS.names()}))


def reads_sample(kind: str) -> bool:
    """Whether ``kind`` is a simulator (its factory takes the sample, not the space)."""
    return kind in INSTRUMENTS


def space_factory(kind: str) -> InstrumentFactory:
    """The factory of a kind measuring on a space: registered, by reference, or entry point.

    Raises:
        ConfigError: Unknown kind, a module or attribute that is missing, not callable.
    """
    if kind in SPACE_INSTRUMENTS:
        return SPACE_INSTRUMENTS.get(kind)
    if is_reference(kind):
        factory = import_reference(kind, USER_KIND)
    elif kind in entry_point_names():
        factory = load_entry_point(kind, USER_KIND)
    else:
        raise ConfigError(
            f"unknown instrument kind {kind!r}: use one of {', '.join(instrument_kinds())}, "
            "a plug-in's 'package.module:factory', or an installed plug-in's kind."
        )
    if not callable(factory):
        raise ConfigError(
            f"{USER_KIND} {kind!r} is not callable: name a factory "
            "f(name, space, modalities, **options) -> Instrument."
        )
    return factory


@register_instrument("simulated")
def _simulated(
    name: str,
    sample: Sample,
    modalities: Sequence[str] | None = None,
    dwell: Sequence[float] | None = None,
    overhead: float | None = None,
) -> SimulatedInstrument:
    """Noise-free instrument reading the sample's ground truth; with option ``dwell`` (relative
    dwell times offered) and optionally ``overhead`` (the fixed time of a measurement, in
    reference dwells, default 1.0) a :class:`DwellingInstrument` (``docs/fidelity.md``)."""
    if dwell is None:
        if overhead is not None:
            raise ConfigError(
                f"instrument {name!r}: options.overhead is the fixed time of a dwell; "
                "add options.dwell (e.g. [0.25, 1.0, 4.0]) or remove it."
            )
        return SimulatedInstrument(name, sample, modalities)
    if overhead is None:
        return DwellingInstrument(name, sample, modalities, dwell)
    return DwellingInstrument(name, sample, modalities, dwell, overhead)


def default_space(sample: Sample) -> Space:
    """The space of ``sample`` without a mask (its table, or every pixel)."""
    return space_of(sample.shape, sample.pixel_size_um, table=sample.features)


def build_base(
    name: str,
    sample: Sample,
    *,
    kind: str = "simulated",
    modalities: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    space: Space | None = None,
) -> Instrument:
    """The base instrument of ``kind`` (no wrappers).

    A simulator gets ``sample``; a kind on a space gets ``space`` (default: the sample's
    unmasked space). Constructors are side-effect free: an instrument that needs a
    connection makes it in :meth:`~coscope.instruments.base.Connects.connect` or at its
    first use.

    Raises:
        ConfigError: Unknown kind, invalid options, a factory that raised, or one that
            returned something other than an :class:`Instrument` named ``name`` offering
            ``modalities``.
    """
    opts = dict(options or {})
    check_options(name, kind, sample, modalities, opts, space)
    if reads_sample(kind):
        return INSTRUMENTS.get(kind)(name, sample, modalities, **opts)
    factory = space_factory(kind)
    mods = None if modalities is None else tuple(modalities)
    try:
        built = factory(name, space or default_space(sample), mods, **opts)
    except CoscopeError as exc:
        raise ConfigError(f"instrument {name!r} of kind {kind!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a plug-in's factory failed: one sentence
        text = " ".join(str(exc).split())[:200] or "no message"
        raise ConfigError(
            f"instrument {name!r} of kind {kind!r} could not be built: its factory raised "
            f"{type(exc).__name__} ({text}); fix the factory or its options."
        ) from None
    check_built(name, kind, built, mods)
    return built


def check_built(
    name: str, kind: str, built: object, modalities: Sequence[str] | None
) -> Instrument:
    """``built`` if it is an :class:`Instrument` named ``name`` offering ``modalities``.

    Raises:
        ConfigError: One sentence saying what the factory of ``kind`` got wrong.
    """
    if not isinstance(built, Instrument):
        raise ConfigError(
            f"instrument kind {kind!r} returned a value of type {type(built).__name__} for "
            f"instrument {name!r}, not an Instrument: return an object with name, modalities, "
            "info(modality) and measure(request)."
        )
    if built.name != name:
        raise ConfigError(
            f"instrument kind {kind!r} named its instrument {built.name!r}, not {name!r}: "
            "give the instrument the name the factory is called with."
        )
    missing = [m for m in modalities or () if m not in tuple(built.modalities)]
    if missing:
        raise ConfigError(
            f"instrument {name!r} of kind {kind!r} does not offer modalities {missing}: it "
            f"offers {list(built.modalities)}; change the spec's modalities or the options."
        )
    return built


def check_fits_sample(base: Instrument, sample: Sample, modalities: Sequence[str]) -> None:
    """Connect ``base`` if it :class:`Connects` and check its signals fit the sample's.

    The sample describes each modality (its axis, what scalarizers score on); an instrument
    on a space describes its own (``info``), and the two axes must agree.

    Raises:
        ConfigError: It cannot connect, or a modality's axis differs from the sample's.
    """
    try:
        if isinstance(base, Connects):
            base.connect()
        infos = {m: base.info(m) for m in modalities}
    except InstrumentError as exc:
        raise ConfigError(f"instrument {base.name!r} cannot start: {exc}") from None
    for modality, info in infos.items():
        if modality not in sample.modalities:
            continue  # named by the spec checks
        axis = sample.info(modality).axis
        if info.length != axis.size or not np.allclose(info.axis, axis):
            raise ConfigError(
                f"instrument {base.name!r} measures {modality} signals on an axis of "
                f"{info.length} points that differs from sample {sample.name!r}'s "
                f"({axis.size} points): make the instrument's axis and the sample's agree."
            )


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
    space: Space | None = None,
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
        space: The campaign's space, for a kind on a space (default: the sample's).

    Raises:
        ConfigError: Unknown kind or invalid settings.
    """
    inst = build_base(name, sample, kind=kind, modalities=modalities, options=options, space=space)
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
    space: Space | None = None,
) -> None:
    """ConfigError unless the kind's factory takes ``options`` (checked without calling it;
    a plug-in's module is imported)."""
    opts = dict(options or {})
    observed: Sample | Space | None = sample
    if reads_sample(kind):
        factory = INSTRUMENTS.get(kind)
    else:
        factory, observed = space_factory(kind), space
    try:
        inspect.signature(factory).bind(name, observed, modalities, **opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"instrument {name!r} of kind {kind!r} got invalid options {sorted(opts)} ({exc}): "
            "remove them or use the kind's documented options."
        ) from None
