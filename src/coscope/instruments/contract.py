"""The instrument contract as reusable checks: run them against any instrument, your own too.

Every registered instrument kind passes these checks (``tests/instruments/test_contract.py``
runs them over each kind and its wrappers); a plug-in author runs them on their own::

    from coscope.instruments.contract import ContractCase, check_instrument

    case = ContractCase(make=lambda: MyInstrument("xrd", sample), requests=[request],
                        sample_shape=sample.shape, bad_params=[{"dwell_s": -1}])
    check_instrument(case)            # raises ContractViolation naming the failed check

or one by one, ``for name, check in CHECKS.items(): check(case)`` (a pytest parametrisation).
A check fails with :class:`ContractViolation` (an ``AssertionError``) saying what is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from coscope.errors import InstrumentError
from coscope.instruments.base import (
    Calibratable,
    Connects,
    Instrument,
    ParameterisedRequests,
    Priced,
    PriceFloor,
    Stoppable,
    accepted_params,
)
from coscope.instruments.pricing import PriceQuery, Pricing, WithCost, pricing_of
from coscope.instruments.wrappers import unwrap
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

CAPABILITY_MEMBERS: dict[type, tuple[str, ...]] = {
    Priced: ("relative_price",),
    PriceFloor: ("lowest_relative_price",),
    ParameterisedRequests: ("request_params", "check_params"),
    Calibratable: ("calibration_bounds",),
    Stoppable: ("stop",),
    Connects: ("connect",),
}
"""The declared capability protocols and their members."""


class ContractViolation(AssertionError):
    """An instrument breaks its contract; the message names the check and what is wrong."""


@dataclass(frozen=True)
class ContractCase:
    """An instrument to check and the requests that exercise it.

    Attributes:
        make: Builds a fresh instrument (determinism is checked across two of them).
        requests: Valid requests, at least one; give one per param set worth checking.
        sample_shape: ``(H, W)`` of the grid the instrument measures (off-sample checks).
        bad_params: Request params the instrument must reject with an InstrumentError.
        pricing: The price function the charged cost must equal (default:
            :func:`~coscope.instruments.pricing.pricing_of` the instrument).
    """

    make: Callable[[], Instrument]
    requests: Sequence[MeasurementRequest]
    sample_shape: tuple[int, int]
    bad_params: Sequence[Mapping[str, Any]] = ()
    pricing: Pricing | None = None
    _cache: dict[str, Instrument] = field(default_factory=dict, compare=False, repr=False)

    @property
    def instrument(self) -> Instrument:
        """One instrument built by :attr:`make`, shared by the checks of this case."""
        if "it" not in self._cache:
            self._cache["it"] = self.make()
        return self._cache["it"]


def _fail(check: str, what: str) -> ContractViolation:
    return ContractViolation(f"instrument contract, {check}: {what}")


def _rejects(check: str, inst: Instrument, request: MeasurementRequest, *words: str) -> None:
    """The request must raise one InstrumentError of one sentence naming ``words``."""
    try:
        inst.measure(request)
    except InstrumentError as exc:
        msg = str(exc)
        if "\n" in msg or not msg.endswith("."):
            raise _fail(check, f"error {msg!r} is not one sentence ending in '.'") from None
        missing = [w for w in words if w not in msg]
        if missing:
            raise _fail(check, f"error {msg!r} does not name {missing}") from None
        return
    except Exception as exc:  # noqa: BLE001 - the contract asks for InstrumentError
        what = f"raised {type(exc).__name__}: {exc} instead of InstrumentError"
        raise _fail(check, what) from exc
    raise _fail(check, f"accepted the invalid request {request}")


def check_protocol(case: ContractCase) -> None:
    """Name, modalities and ``info`` of every modality; unknown modalities rejected."""
    inst = case.instrument
    if not isinstance(inst, Instrument):
        raise _fail("protocol", f"{type(inst).__name__} lacks name/modalities/info/measure")
    if not isinstance(inst.name, str) or not inst.name:
        raise _fail("protocol", f"name {inst.name!r} must be a non-empty str")
    mods = inst.modalities
    if not isinstance(mods, tuple) or not mods or not all(isinstance(m, str) for m in mods):
        raise _fail("protocol", f"modalities {mods!r} must be a non-empty tuple of str")
    for m in mods:
        info = inst.info(m)
        if not isinstance(info, ModalityInfo) or info.name != m:
            raise _fail("protocol", f"info({m!r}) returned {info!r}, not its ModalityInfo")
    try:
        inst.info("no_such_modality")
    except InstrumentError:
        return
    raise _fail("protocol", "info('no_such_modality') did not raise InstrumentError")


def check_measure(case: ContractCase) -> None:
    """Each request gives a Measurement of its step/instrument/modality/location, finite."""
    inst = case.instrument
    for req in case.requests:
        m = inst.measure(req)
        if not isinstance(m, Measurement):
            raise _fail("measure", f"returned {type(m).__name__}, not a Measurement")
        got = (m.step, m.instrument, m.modality, m.location)
        want = (req.step, req.instrument, req.modality, req.location)
        if got != want:
            raise _fail("measure", f"measurement is for {got}, the request for {want}")
        length = inst.info(req.modality).length
        sig = m.signal
        if sig.shape != (length,) or sig.dtype != np.float64 or not np.isfinite(sig).all():
            raise _fail("measure", f"signal {sig.shape} {sig.dtype} is not ({length},) finite")
        if not m.t_start <= m.t_end:
            raise _fail("measure", f"t_start {m.t_start} is after t_end {m.t_end}")


def check_rejects_bad_requests(case: ContractCase) -> None:
    """Wrong name, unknown modality, off-sample location, bad seed and bad params fail."""
    inst, req = case.instrument, case.requests[0]
    h, w = case.sample_shape
    _rejects(
        "wrong instrument", inst, dataclasses.replace(req, instrument="elsewhere"), "elsewhere"
    )
    _rejects("unknown modality", inst, dataclasses.replace(req, modality="no_such"), "no_such")
    for loc in (Location(h, 0), Location(0, w), Location(-1, 0)):
        _rejects("off sample", inst, dataclasses.replace(req, location=loc), "off the sample")
    _rejects("bad seed", inst, dataclasses.replace(req, seed=-1), "seed")
    bad: list[Mapping[str, Any]] = [{"no_such_param": 1}, {"stage_from": "here"}]
    bad += case.bad_params
    for params in bad:
        _rejects("bad params", inst, dataclasses.replace(req, params={**req.params, **params}))


def check_deterministic(case: ContractCase) -> None:
    """The same request gives the same signal, on the same and on a fresh instrument."""
    inst, req = case.instrument, case.requests[0]
    first = inst.measure(req)
    for other in case.requests[1:]:
        inst.measure(other)  # state must not leak between requests
    again, fresh = inst.measure(req), case.make().measure(req)
    for label, m in (("again", again), ("on a fresh instrument", fresh)):
        if not np.array_equal(first.signal, m.signal):
            raise _fail("deterministic", f"request {req.step} measured {label} differs")


def check_price(case: ContractCase) -> None:
    """The charged cost equals the price function of the request, finite and >= 0."""
    inst = case.instrument
    pricing = case.pricing or pricing_of(inst)
    for req in case.requests:
        price = pricing.price(PriceQuery.of(req))
        cost = inst.measure(req).cost
        if not math.isfinite(price) or price < 0 or not math.isclose(cost, price, rel_tol=1e-12):
            raise _fail("price", f"request {req.step} {req.params} charged {cost}, priced {price}")


def check_capabilities(case: ContractCase) -> None:
    """Declared capabilities of the base instrument work on the case's requests."""
    base = unwrap(case.instrument)
    for req in case.requests:
        if isinstance(base, Priced):
            factor = base.relative_price(req.modality, req.location, req.params)
            if not math.isfinite(factor) or factor < 0:
                raise _fail("Priced", f"relative_price {factor!r} is not finite >= 0")
            if isinstance(base, PriceFloor) and not base.lowest_relative_price() <= factor:
                raise _fail(
                    "PriceFloor",
                    f"lowest_relative_price {base.lowest_relative_price()!r} exceeds the "
                    f"relative price {factor!r} of request {req.step} {req.params}",
                )
        unknown = sorted(set(req.params) - set(accepted_params(base)))
        if unknown:
            raise _fail("params", f"request params {unknown} are not declared by the instrument")
        if isinstance(base, ParameterisedRequests):
            schema = base.request_params()
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in schema.items()):
                raise _fail("ParameterisedRequests", f"request_params {schema!r} not str -> str")
            base.check_params(req.params)
    if isinstance(base, Calibratable):
        for key, (lo, hi) in base.calibration_bounds().items():
            if not lo < hi:
                raise _fail("Calibratable", f"bounds of {key!r} are ({lo}, {hi}): need lo < hi")
    if isinstance(base, Stoppable):
        base.stop()  # idle: a no-op
    if isinstance(base, Connects):
        base.connect()  # connected already: a no-op


def declared_view(instrument: Instrument) -> Instrument:
    """An object with only the members ``instrument`` declares (protocol + capabilities)."""
    members = ["info", "measure"]
    for proto, names in CAPABILITY_MEMBERS.items():
        if isinstance(instrument, proto):
            members += names
    namespace: dict[str, Any] = {m: getattr(instrument, m) for m in members}
    namespace |= {"name": instrument.name, "modalities": tuple(instrument.modalities)}
    return cast(Instrument, _View(namespace))


class _View:
    """The attributes :func:`declared_view` exposes, and nothing else."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.__dict__.update(namespace)


def check_declared_only(case: ContractCase) -> None:
    """The price wrapper needs only declared members: a declared-only view charges the same."""
    base = unwrap(case.instrument)
    pricing = case.pricing or pricing_of(case.instrument)
    kwargs = {
        "travel_cost_per_um": pricing.travel_cost_per_um,
        "pixel_size_um": pricing.pixel_size_um,
    }
    real = WithCost(base, pricing.cost, **kwargs)
    view = WithCost(declared_view(base), pricing.cost, **kwargs)
    for req in case.requests:
        a, b = real.measure(req), view.measure(req)
        if a.cost != b.cost or not np.array_equal(a.signal, b.signal):
            raise _fail("declared only", f"request {req.step} needs an undeclared member")


CHECKS: dict[str, Callable[[ContractCase], None]] = {
    "protocol": check_protocol,
    "measure": check_measure,
    "rejects_bad_requests": check_rejects_bad_requests,
    "deterministic": check_deterministic,
    "price": check_price,
    "capabilities": check_capabilities,
    "declared_only": check_declared_only,
}
"""Every check of the contract, by name."""


def check_instrument(case: ContractCase) -> None:
    """Run every check of :data:`CHECKS` on ``case``; ContractViolation on the first failure."""
    for check in CHECKS.values():
        check(case)
