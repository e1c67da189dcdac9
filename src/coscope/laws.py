"""Physical laws a structured GP may take as its mean, as plain data (no torch).

A structured GP (``policy.model: structured``) models the target as a physical law plus a
GP residual: ``z(x) = law(x; theta) + f(x)``, ``f ~ GP(0, k)``. The law is named in the spec
(``policy.mean.law``) and its parameters ``theta`` carry priors (``policy.mean.priors``
overrides the defaults below). This module declares the built-in laws — formula, parameter
names, units, default priors — so that a spec is checked without torch; the torch forms
live in :mod:`coscope.models.laws`.

Units: ``x`` is the model input (normalised coordinates in ``[0, 1]^d`` for a grid: column
``x_0`` is the row, ``x_1`` the column, as :func:`coscope.spaces.layout_features`); ``z`` is
the *standardised* target ``(y - ybar) / s_y`` (training mean and standard deviation, the
GP's outcome transform). A parameter of unit ``z`` is a target level or step; the fit
record reports it converted back to target units (``y``).

A user's law is ``package.module:function``: ``function(x, **theta) -> z`` on torch tensors
(``x``: ``n x d``; each parameter a 0-d tensor; returns ``(n,)``); every keyword parameter
needs a prior in the spec. It is imported only when the campaign fits (never by reading a
trace, :mod:`coscope.trust`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from coscope.registry import Registry

Unit = Literal["x", "rad", "z", "z_level", "user"]
"""``x``: input units; ``rad``: radians; ``z``: standardised target step (reported times
``s_y``); ``z_level``: standardised target level (reported as ``ybar + s_y * value``);
``user``: a user law's own units (reported as fitted)."""

PRIOR_ARGS: Mapping[str, tuple[str, str]] = {
    "normal": ("loc", "scale"),
    "lognormal": ("loc", "scale"),
    "gamma": ("concentration", "rate"),
    "uniform": ("low", "high"),
}
"""Prior families (gpytorch priors of the same names) and their two arguments."""

Prior = Mapping[str, Any]
"""``{"dist": "normal", "loc": 0.5, "scale": 0.2}`` (arguments as in :data:`PRIOR_ARGS`)."""


@dataclass(frozen=True)
class LawParam:
    """One parameter of a law.

    Attributes:
        name: Parameter name (``theta`` key).
        unit: See :data:`Unit`.
        prior: Default prior.
        doc: What it is.
        positive: Constrained ``> 0`` (a width); its prior must live on ``(0, inf)``.
    """

    name: str
    unit: Unit
    prior: Prior
    doc: str
    positive: bool = False


@dataclass(frozen=True)
class LawInfo:
    """A built-in law: its formula (``x`` in input units, ``z`` standardised) and parameters."""

    name: str
    formula: str
    params: tuple[LawParam, ...]

    def param(self, name: str) -> LawParam:
        """The parameter ``name`` (KeyError if absent)."""
        return {p.name: p for p in self.params}[name]


def _normal(loc: float, scale: float) -> Prior:
    return {"dist": "normal", "loc": loc, "scale": scale}


_LEVEL = LawParam("offset", "z_level", _normal(0.0, 1.0), "baseline level")
LAWS: Registry[LawInfo] = Registry("mean law")
"""Built-in laws by name."""

for _law in (
    LawInfo(
        "linear",
        "z = offset + sum_i slope_i * (x_i - 0.5)",
        (
            _LEVEL,
            LawParam("slope_0", "z", _normal(0, 2), "slope along x_0 (z per unit x)"),
            LawParam("slope_1", "z", _normal(0, 2), "slope along x_1 (z per unit x)"),
        ),
    ),
    LawInfo(
        "gaussian_peak",
        "z = offset + amplitude * exp(-|x - centre|^2 / (2 width^2))",
        (
            _LEVEL,
            LawParam("amplitude", "z", _normal(1.0, 2.0), "peak height above the baseline"),
            LawParam("centre_0", "x", _normal(0.5, 0.5), "peak position along x_0"),
            LawParam("centre_1", "x", _normal(0.5, 0.5), "peak position along x_1"),
            LawParam(
                "width",
                "x",
                {"dist": "gamma", "concentration": 2.0, "rate": 10.0},
                "peak standard deviation (mode 0.1)",
                positive=True,
            ),
        ),
    ),
    LawInfo(
        "domain_wall",
        "z = offset + height / 2 * tanh(((x - 0.5) . (cos angle, sin angle) - position) / width)",
        (
            _LEVEL,
            LawParam("height", "z", _normal(0.0, 3.0), "step across the wall (z units)"),
            LawParam(
                "position",
                "x",
                _normal(0.0, 0.5),
                "signed distance of the wall from the centre (0.5, 0.5), along its normal",
            ),
            LawParam(
                "angle",
                "rad",
                {"dist": "uniform", "low": -math.pi, "high": math.pi},
                "direction of the wall's normal from the x_0 axis",
            ),
            LawParam(
                "width",
                "x",
                {"dist": "gamma", "concentration": 2.0, "rate": 20.0},
                "wall half-thickness (mode 0.05)",
                positive=True,
            ),
        ),
    ),
):
    LAWS.register(_law.name)(_law)


def is_user_law(name: str) -> bool:
    """Whether ``name`` is a user's ``package.module:function``."""
    return ":" in name


def check_prior(law: str, param: str, prior: Any, positive: bool = False) -> dict[str, Any]:
    """The prior as a plain dict; ValueError (one sentence naming the fix) when unusable."""
    where = f"policy.mean.priors.{param}"
    families = ", ".join(PRIOR_ARGS)
    if not isinstance(prior, Mapping) or prior.get("dist") not in PRIOR_ARGS:
        raise ValueError(
            f"{where} must be {{dist: <{families}>, ...}} (e.g. {{dist: normal, loc: 0.5, "
            f"scale: 0.2}}), got {prior!r}"
        )
    dist = str(prior["dist"])
    first, second = PRIOR_ARGS[dist]
    if set(prior) != {"dist", first, second}:
        raise ValueError(f"{where}: a {dist} prior takes exactly {first} and {second}")
    a, b = prior[first], prior[second]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (a, b)):
        raise ValueError(f"{where}: {first} and {second} must be finite numbers")
    if dist == "uniform" and not a < b:
        raise ValueError(f"{where}: a uniform prior needs low < high, got {a} and {b}")
    if dist != "uniform" and b <= 0 or dist == "gamma" and a <= 0:
        raise ValueError(
            f"{where}: a {dist} prior needs positive {second}"
            + (f" and {first}" if dist == "gamma" else "")
        )
    if positive and dist == "normal" or positive and dist == "uniform" and a < 0:
        raise ValueError(
            f"{where}: '{param}' of law '{law}' is positive; give a gamma, lognormal or "
            "uniform (low >= 0) prior"
        )
    return {"dist": dist, first: float(a), second: float(b)}


def resolve_priors(law: str, overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every parameter's prior of built-in ``law``: defaults with ``overrides`` applied.

    Raises:
        ValueError: Unknown law, unknown parameter or a bad prior (one sentence).
    """
    info = _law_info(law)
    names = [p.name for p in info.params]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"law '{law}' has no parameter(s) {unknown}; its parameters are {names}")
    return {
        p.name: check_prior(law, p.name, overrides.get(p.name, p.prior), p.positive)
        for p in info.params
    }


def _law_info(law: str) -> LawInfo:
    if law not in LAWS:
        raise ValueError(
            f"unknown mean law '{law}'; use one of {', '.join(LAWS.names())} or a "
            "'package.module:function' of your own"
        )
    return LAWS.get(law)


def check_mean(law: str, overrides: Mapping[str, Any]) -> None:
    """ValueError (one sentence) unless ``law`` with prior ``overrides`` is usable.

    A user law's parameters are known only once it is imported (when the campaign fits);
    here only the form of its priors is checked.
    """
    if is_user_law(law):
        if not overrides:
            raise ValueError(
                f"user law '{law}' needs a prior for each of its parameters in policy.mean.priors"
            )
        for name, prior in overrides.items():
            check_prior(law, name, prior)
        return
    resolve_priors(law, overrides)
