"""Theory simulators as instruments: a Landau-Ginzburg-Devonshire loop model and a lattice model.

A theory simulator is an instrument whose requests carry parameters (``request.params``):
``{"theta": {name: value, ...}, "fidelity": L}``. It reads the location's *structure* from the
sample and returns a hysteresis loop on the experiment's voltage axis, so theory and
experiment are directly comparable. Kinds (spec ``instruments[].kind``):

* ``theory_lgd`` — homogeneous Landau-Khalatnikov switching at each location
  (:func:`~coscope.instruments.physics.hysteresis_loops`);
* ``theory_lattice`` — the 2-D TDGL lattice of :mod:`coscope.instruments.lattice`; the
  request's ``fidelity`` is the lattice side ``L`` and its price scales as ``L^2``: the
  instrument is :class:`~coscope.instruments.base.Priced` with ``(L / L_max)^2``, so a spec
  ``cost`` prices the largest side (:mod:`coscope.instruments.pricing`).

Both declare their request params (:class:`~coscope.instruments.base.ParameterisedRequests`)
and the parameters an agent may calibrate (:class:`~coscope.instruments.base.Calibratable`).

Structure enters both through the normalised structure value ``s = structure / max|structure|``
in ``[-1, 1]`` at the location (for a PFM-like image: the local polarisation, ``1 - s^2``: the
wall proximity)::

    E_c(s)   = coercive_field * (1 + pinning * (1 - s^2))       static coercive field, V
    E_i(s)   = imprint + imprint_gain * s                       built-in field, V
    alpha, beta = landau_coefficients(E_c(s), saturation)       Landau coefficients
    loop     = LK(alpha, beta, gamma, E_i; voltage)              polarisation, units of P_s = 1

The theory modality needs a place in the trace: wrap the sample with the ``with_theory``
sample kind, which adds one modality per theory simulator on the axis of the experiment's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments.base import validate_request, validate_signal
from coscope.instruments.lattice import lattice_cost_factor, lattice_loops
from coscope.instruments.physics import hysteresis_loops, landau_coefficients
from coscope.instruments.pricing import Pricing
from coscope.instruments.registry import register_instrument
from coscope.instruments.sample import Sample, build_sample, register_sample
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

LGD_THETA: dict[str, float] = {
    "coercive_field": 3.0,
    "saturation": 1.0,
    "gamma": 1.0,
    "imprint": 0.0,
    "imprint_gain": 0.0,
    "pinning": 0.0,
}
"""Parameters of the LGD model and their defaults (see the module docstring for units)."""

LATTICE_THETA: dict[str, float] = {
    **LGD_THETA,
    "kappa": 1.0,
    "disorder": 0.0,
    "lattice_pinning": 0.0,
    "depolarization": 0.0,
}
"""Parameters of the lattice model: the LGD ones plus gradient, disorder and dipolar terms."""

_POSITIVE = ("coercive_field", "saturation", "gamma")


def normalized_structure(structure: np.ndarray) -> np.ndarray:
    """``structure / max|structure|`` in ``[-1, 1]``, ``H x W`` (zeros for a blank image)."""
    scale = float(np.max(np.abs(structure)))
    return structure / scale if scale > 0 else np.zeros_like(structure)


def local_landau(theta: Mapping[str, float], s: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(alpha, beta, imprint)`` at normalised structure values ``s`` (any shape)."""
    s = np.asarray(s, dtype=np.float64)
    ec = theta["coercive_field"] * (1.0 + theta["pinning"] * (1.0 - s**2))
    alpha, beta = landau_coefficients(ec, np.full_like(ec, theta["saturation"]))
    return alpha, beta, theta["imprint"] + theta["imprint_gain"] * s


def lgd_loops(voltage: np.ndarray, s: np.ndarray, theta: Mapping[str, float]) -> np.ndarray:
    """LGD loops at structure values ``s`` (shape ``S``): ``S + (V,)``, units of ``P_s``."""
    alpha, beta, imprint = local_landau(theta, s)
    loops = hysteresis_loops(voltage, alpha, beta, theta["gamma"], imprint, n_sub=12)
    return loops * theta["saturation"]


def check_theta(theta: Mapping[str, Any], known: Mapping[str, float], who: str) -> dict:
    """Defaults of ``known`` updated with ``theta``; InstrumentError on a bad name or value."""
    unknown = sorted(set(theta) - set(known))
    if unknown:
        raise InstrumentError(
            f"{who} got unknown theta parameter(s) {unknown}: use names from {sorted(known)}."
        )
    out = dict(known)
    for key, value in theta.items():
        if not isinstance(value, int | float) or not np.isfinite(value):
            raise InstrumentError(f"{who}: theta {key}={value!r} is invalid: give a finite number.")
        if key in _POSITIVE and value <= 0:
            raise InstrumentError(f"{who}: theta {key}={value!r} is invalid: it must be > 0.")
        out[key] = float(value)
    if out["pinning"] < 0 or out.get("disorder", 0.0) < 0 or out.get("kappa", 0.0) < 0:
        raise InstrumentError(f"{who}: pinning, disorder and kappa must be >= 0, got {theta}.")
    return out


class TheoryInstrument:
    """A loop simulator at the sample's locations (kinds ``theory_lgd``, ``theory_lattice``).

    Args:
        name: Instrument name.
        sample: The sample (its structure image is the simulator's input).
        modalities: One theory modality (the ``with_theory`` sample declares it).
        model: ``"lgd"`` or ``"lattice"``.
        theta: Fixed parameter values replacing the model defaults (requests override them).
        sizes: Lattice sides offered as fidelities (``lattice`` only); the largest costs the
            instrument's ``cost``, a side ``L`` costs ``cost * (L / max(sizes))^2``.
        calibrate: Parameters an agent may tune, ``{name: [lo, hi]}`` (for the agent; see
            :meth:`calibration_bounds`).
    """

    def __init__(
        self,
        name: str,
        sample: Sample,
        modalities: Sequence[str] | None,
        model: str,
        theta: Mapping[str, float] | None = None,
        sizes: Sequence[int] = (8, 16, 32),
        calibrate: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        mods = tuple(modalities or ())
        if len(mods) != 1 or mods[0] not in sample.modalities:
            raise ConfigError(
                f"theory instrument {name!r} needs exactly one modality declared by the sample "
                f"(got {list(mods)}): use sample kind 'with_theory' with theory: "
                "{<modality>: <experiment modality>}."
            )
        if not sizes or any(int(s) != s or s < 2 for s in sizes):
            raise ConfigError(f"instrument {name!r}: sizes {list(sizes)} must be integers >= 2.")
        self.name = name
        self.sample = sample
        self.modalities: tuple[str, ...] = mods
        self.model = model
        self.known = LATTICE_THETA if model == "lattice" else LGD_THETA
        try:
            self.theta = check_theta(dict(theta or {}), self.known, f"instrument {name!r}")
        except InstrumentError as exc:
            raise ConfigError(str(exc)) from None
        self.sizes = tuple(sorted(int(s) for s in sizes))
        self.s = normalized_structure(sample.structure)
        self.calibrate = dict(calibrate or {})

    def info(self, modality: str) -> ModalityInfo:
        """Signal description: the experiment's voltage axis."""
        return self.sample.info(modality)

    def relative_price(self, modality: str, location: Location, params: Mapping[str, Any]) -> float:
        """Price relative to the top fidelity: ``(L / L_max)^2`` for a lattice, else 1."""
        if self.model != "lattice":
            return 1.0
        return lattice_cost_factor(self.fidelity(params), self.sizes[-1])

    def lowest_relative_price(self) -> float:
        """Relative price of the smallest lattice side (1 without fidelities)."""
        if self.model != "lattice":
            return 1.0
        return lattice_cost_factor(self.sizes[0], self.sizes[-1])

    def request_params(self) -> dict[str, str]:
        """``theta`` (and, for a lattice, ``fidelity``): the params a request may carry."""
        out = {"theta": f"{{name: value}} over {sorted(self.known)}, overriding the fixed ones"}
        if self.model == "lattice":
            out["fidelity"] = f"lattice side, one of {list(self.sizes)} (default the largest)"
        return out

    def check_params(self, params: Mapping[str, Any]) -> None:
        """InstrumentError unless ``theta`` and ``fidelity`` are valid."""
        theta = params.get("theta", {})
        if not isinstance(theta, Mapping):
            raise InstrumentError(
                f"instrument {self.name!r}: theta {theta!r} is invalid: give {{name: value}}."
            )
        check_theta({**self.theta, **theta}, self.known, f"instrument {self.name!r}")
        if self.model == "lattice":
            self.fidelity(params)

    def calibration_bounds(self) -> dict[str, tuple[float, float]]:
        """The ``calibrate`` option as ``{name: (lo, hi)}`` (empty when not given)."""
        return {k: (float(v[0]), float(v[1])) for k, v in self.calibrate.items()}

    def fidelity(self, params: Mapping[str, Any]) -> int:
        """The lattice side a request asks for (default: the largest offered)."""
        size = params.get("fidelity", self.sizes[-1])
        if isinstance(size, bool) or size not in self.sizes:
            raise InstrumentError(
                f"instrument {self.name!r}: fidelity {size!r} is not offered; use one of "
                f"{list(self.sizes)}."
            )
        return int(size)

    def simulate(self, location: Location, params: Mapping[str, Any], seed: int) -> np.ndarray:
        """The theory loop at ``location`` for ``params``, shape ``(V,)``."""
        theta = check_theta(
            {**self.theta, **dict(params.get("theta", {}))}, self.known, f"instrument {self.name!r}"
        )
        voltage = self.sample.info(self.modalities[0]).axis
        s = self.s[location.row, location.col]
        if self.model == "lgd":
            return lgd_loops(voltage, np.array([s]), theta)[0]
        alpha, beta, imprint = local_landau(theta, np.array([s]))
        loop = lattice_loops(
            voltage,
            self.fidelity(params),
            alpha,
            beta,
            rng=np.random.default_rng(seed),
            gamma=theta["gamma"],
            imprint=imprint,
            kappa=theta["kappa"],
            disorder=theta["disorder"],
            pinning=theta["lattice_pinning"],
            depolarization=theta["depolarization"],
        )[0]
        return loop * theta["saturation"]

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Run the simulation the request describes (``params``: ``theta``, ``fidelity``).

        Charges the relative price (unit cost); the cost wrapper charges the campaign's.
        """
        t_start = time.time()
        validate_request(self, self.sample.shape, request)
        signal = self.simulate(request.location, request.params, request.seed)
        signal = validate_signal(self.info(request.modality), signal)
        return Measurement(
            request.step,
            self.name,
            request.modality,
            request.location,
            signal,
            Pricing.of(self)(request),
            t_start,
            time.time(),
        )


@register_instrument("theory_lgd")
def _theory_lgd(
    name: str,
    sample: Sample,
    modalities: Sequence[str] | None = None,
    theta: Mapping[str, float] | None = None,
    calibrate: Mapping[str, Sequence[float]] | None = None,
) -> TheoryInstrument:
    """LGD loop simulator; ``calibrate`` (bounds of the parameters to tune) is for the agent."""
    return TheoryInstrument(name, sample, modalities, "lgd", theta, calibrate=calibrate)


@register_instrument("theory_lattice")
def _theory_lattice(
    name: str,
    sample: Sample,
    modalities: Sequence[str] | None = None,
    theta: Mapping[str, float] | None = None,
    calibrate: Mapping[str, Sequence[float]] | None = None,
    sizes: Sequence[int] = (8, 16, 32),
) -> TheoryInstrument:
    """Lattice TDGL simulator; the request's ``fidelity`` is the lattice side."""
    return TheoryInstrument(name, sample, modalities, "lattice", theta, sizes, calibrate)


@register_sample("with_theory")
def with_theory(*, seed: int = 0, base: Mapping[str, Any], theory: Mapping[str, str]) -> Sample:
    """A sample plus theory modalities on the axes of experimental ones.

    Args:
        seed: Passed to the base sample.
        base: ``{kind, params}`` of the sample explored.
        theory: ``{theory modality: experiment modality}``, e.g. ``{theory_lgd: beps_loop}``.
    """
    if not isinstance(base, Mapping) or "kind" not in base:
        raise ConfigError("base must be a mapping {kind: ..., params: {...}} naming the sample.")
    sample = build_sample(str(base["kind"]), dict(base.get("params", {})), seed)
    modalities = dict(sample.modalities)
    for mod, experiment in dict(theory).items():
        if experiment not in sample.modalities or mod in sample.modalities:
            raise ConfigError(
                f"theory modality {mod!r} must be new and map to one of the sample's modalities "
                f"{sorted(sample.modalities)}, got {experiment!r}."
            )
        info = sample.modalities[experiment]
        modalities[mod] = ModalityInfo(mod, info.axis, info.axis_name, info.axis_units, "P/P_s")
    return Sample(sample.name, sample.structure, sample.pixel_size_um, modalities, sample.truth)
