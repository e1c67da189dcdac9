"""Synthetic test functions as an instrument over a continuous box (kind ``synthetic``).

A box campaign (``docs/spaces.md``, "A continuous box") measures points ``x`` of a box of
``d`` dimensions; the request carries them as the declared request param ``x`` (a list of
``d`` floats in the box's units). This instrument evaluates a registered test function at
``x`` and returns a one-value signal ``[f(x) + noise]`` (modality of the ``box`` sample kind,
default ``value``; scalarizer ``value_at`` with ``at: 0``). Noise is Gaussian with absolute
standard deviation ``noise_sd``, drawn from the request seed, so a re-issued request gives
the same value.

Every function is stated as a **maximisation** (coscope maximises its target): the usual
minimisation benchmarks enter negated, so the known optimum is their maximum.

* ``branin`` — minus Branin-Hoo on ``x1 in [-5, 10], x2 in [0, 15]``; max ``-0.397887``
  at ``(-pi, 12.275)``, ``(pi, 2.275)``, ``(9.42478, 2.475)``.
* ``hartmann6`` — minus Hartmann-6 on ``[0, 1]^6``; max ``3.32237`` at
  ``(0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)``.
* ``peaks2d`` — a field of three Gaussian peaks on ``[0, 1]^2`` (heights 1, 0.7, 0.45),
  max ``1.0000013`` at ``(0.72, 0.28)`` (the others are local maxima that trap a greedy search).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coscope.errors import ConfigError, InstrumentError
from coscope.instruments.base import validate_request, validate_signal
from coscope.instruments.registry import register_instrument
from coscope.instruments.sample import Sample, register_sample
from coscope.registry import Registry
from coscope.spaces.box import DEFAULT_CAPACITY, POINT_PARAM
from coscope.types import Measurement, MeasurementRequest, ModalityInfo


@dataclass(frozen=True)
class TestFunction:
    """A test function to maximise.

    Attributes:
        dim: Number of inputs ``d``.
        evaluate: ``X (n x d) -> (n,)`` float64, in the function's own units.
        maximum: Its known global maximum.
        argmax: One maximiser, ``(d,)``.
        domain: The standard box, ``d`` pairs ``(lo, hi)``.
    """

    __test__ = False  # not a pytest class
    dim: int
    evaluate: Callable[[np.ndarray], np.ndarray]
    maximum: float
    argmax: tuple[float, ...]
    domain: tuple[tuple[float, float], ...]


FUNCTIONS: Registry[TestFunction] = Registry("synthetic function")


def _branin(X: np.ndarray) -> np.ndarray:
    x1, x2 = X[:, 0], X[:, 1]
    b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
    return -((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10)


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def _hartmann6(X: np.ndarray) -> np.ndarray:
    inner = np.sum(_H6_A[None] * (X[:, None, :] - _H6_P[None]) ** 2, axis=2)
    return np.sum(_H6_ALPHA * np.exp(-inner), axis=1)


_PEAKS = ((1.0, 0.72, 0.28, 0.07), (0.7, 0.25, 0.7, 0.12), (0.45, 0.75, 0.8, 0.1))


def _peaks2d(X: np.ndarray) -> np.ndarray:
    out = np.zeros(X.shape[0])
    for height, cx, cy, width in _PEAKS:
        out += height * np.exp(-((X[:, 0] - cx) ** 2 + (X[:, 1] - cy) ** 2) / (2 * width**2))
    return out


FUNCTIONS.register("branin")(
    TestFunction(2, _branin, -0.397887357729738, (np.pi, 2.275), ((-5.0, 10.0), (0.0, 15.0)))
)
FUNCTIONS.register("hartmann6")(
    TestFunction(
        6,
        _hartmann6,
        3.32236801141551,
        (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
        ((0.0, 1.0),) * 6,
    )
)
FUNCTIONS.register("peaks2d")(
    TestFunction(2, _peaks2d, 1.0000012925204191, (0.71999989, 0.28000025), ((0.0, 1.0),) * 2)
)


def test_function(name: str) -> TestFunction:
    """The registered function ``name``; ConfigError listing the known ones."""
    return FUNCTIONS.get(name)


test_function.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@register_sample("box")
def box_sample(
    seed: int = 0, modality: str = "value", capacity: int = DEFAULT_CAPACITY, name: str = "box"
) -> Sample:
    """The sample of a box campaign: ``capacity x 1`` point slots, one scalar ``modality``.

    Its dimensions and bounds are the spec's ``sample.box``; the sample only gives the
    trace its layout (slot ``k`` holds the point of step ``k``) and the modality's signal
    description (one value, axis ``[0]``). No ground truth: the instrument computes it.
    """
    del seed
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 10**6:
        raise ConfigError(f"capacity={capacity!r} is invalid: give an integer in 1..1000000.")
    if not isinstance(modality, str) or not modality.isidentifier():
        raise ConfigError(f"modality={modality!r} is invalid: give a plain name such as value.")
    info = ModalityInfo(modality, np.zeros(1), "index", "", "a.u.")
    return Sample(name, np.zeros((capacity, 1)), 1.0, {modality: info})


class SyntheticFunction:
    """Evaluates a test function at the box point each request carries (``params["x"]``).

    Args:
        name: Instrument name.
        sample: The ``box`` sample (its slots and modality).
        modalities: One modality of the sample (default: its only one).
        function: Registered test function (``branin``, ``hartmann6``, ``peaks2d``).
        noise_sd: Standard deviation of additive Gaussian noise, in the function's units.

    Raises:
        ConfigError: Unknown function, bad noise or modality.
    """

    def __init__(
        self,
        name: str,
        sample: Sample,
        modalities: Sequence[str] | None = None,
        function: str = "branin",
        noise_sd: float = 0.0,
    ) -> None:
        mods = tuple(modalities or sample.modalities)
        if len(mods) != 1 or mods[0] not in sample.modalities:
            raise ConfigError(
                f"synthetic instrument {name!r} measures one modality of its sample; got "
                f"{list(mods)}, the sample has {sorted(sample.modalities)}."
            )
        noise = float(noise_sd)
        if not np.isfinite(noise) or noise < 0:
            raise ConfigError(f"instrument {name!r}: noise_sd={noise_sd!r} must be >= 0.")
        self.name = name
        self.sample = sample
        self.modalities: tuple[str, ...] = mods
        self.function_name = function
        self.function = test_function(function)
        self.noise_sd = noise

    def __repr__(self) -> str:
        return f"SyntheticFunction({self.name!r}, {self.function_name!r})"

    def info(self, modality: str) -> ModalityInfo:
        """Signal description of the modality (one value)."""
        return self.sample.info(modality)

    def point_dimension(self) -> int:
        """Number of coordinates ``d`` a request's ``x`` must have."""
        return self.function.dim

    def request_params(self) -> Mapping[str, str]:
        """The point to evaluate: ``x``."""
        return {POINT_PARAM: f"the point, {self.function.dim} coordinates in the box's units"}

    def check_params(self, params: Mapping[str, Any]) -> None:
        """InstrumentError unless ``params["x"]`` is ``d`` finite numbers."""
        point = params.get(POINT_PARAM)
        ok = isinstance(point, list | tuple) and len(point) == self.function.dim
        ok = ok and all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            for v in point  # type: ignore[union-attr]
        )
        if not ok:
            raise InstrumentError(
                f"instrument {self.name!r} evaluates {self.function_name} at request param "
                f"{POINT_PARAM} = {self.function.dim} finite numbers; got {point!r}."
            )

    def truth(self, points: np.ndarray) -> np.ndarray:
        """Noise-free values at ``points`` (``n x d``), ``(n,)``."""
        X = np.asarray(points, dtype=np.float64).reshape(-1, self.function.dim)
        return self.function.evaluate(X)

    def measure(self, request: MeasurementRequest) -> Measurement:
        """``[f(x) + noise]`` at the request's point; unit cost."""
        t_start = time.time()
        validate_request(self, self.sample.shape, request)  # also check_params: x is valid
        value = float(self.truth(np.asarray(request.params[POINT_PARAM]))[0])
        if self.noise_sd:
            value += self.noise_sd * float(np.random.default_rng(request.seed).standard_normal())
        signal = validate_signal(self.info(request.modality), np.array([value]))
        return Measurement.answering(request, self.name, signal, t_start)


@register_instrument("synthetic")
def _synthetic(
    name: str,
    sample: Sample,
    modalities: Sequence[str] | None = None,
    function: str = "branin",
    noise_sd: float = 0.0,
) -> SyntheticFunction:
    """A registered test function evaluated at each request's box point."""
    return SyntheticFunction(name, sample, modalities, function, noise_sd)


__all__ = ["FUNCTIONS", "SyntheticFunction", "TestFunction", "box_sample", "test_function"]
