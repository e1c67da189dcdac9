"""Torch forms of the mean laws declared in :mod:`coscope.laws`, their fit starts, user laws.

A law is ``law(x, theta) -> z``: ``x`` is ``... x n x d`` (inputs in ``[0, 1]``), ``theta``
maps parameter names to 0-d tensors, the result is ``... x n`` in standardised target units
(see :mod:`coscope.laws`). The fit is non-convex in positions and angles, so each law also
gives deterministic starts computed from the data (:func:`starts`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from coscope.errors import ConfigError, ModelError
from coscope.laws import LAWS, check_prior, is_user_law, resolve_priors
from coscope.trust import import_user_code

LawFn = Callable[..., torch.Tensor]
"""``(x, **theta) -> z`` on torch tensors (module docstring)."""
Start = dict[str, float]
"""Initial parameter values of one fit start."""


def _linear(x: Tensor, offset: Tensor, slope_0: Tensor, slope_1: Tensor) -> Tensor:
    return offset + slope_0 * (x[..., 0] - 0.5) + slope_1 * (x[..., 1] - 0.5)


def _gaussian_peak(
    x: Tensor, offset: Tensor, amplitude: Tensor, centre_0: Tensor, centre_1: Tensor, width: Tensor
) -> Tensor:
    r2 = (x[..., 0] - centre_0) ** 2 + (x[..., 1] - centre_1) ** 2
    return offset + amplitude * torch.exp(-r2 / (2 * width**2))


def _domain_wall(
    x: Tensor, offset: Tensor, height: Tensor, position: Tensor, angle: Tensor, width: Tensor
) -> Tensor:
    along = (x[..., 0] - 0.5) * torch.cos(angle) + (x[..., 1] - 0.5) * torch.sin(angle)
    return offset + 0.5 * height * torch.tanh((along - position) / width)


_BUILTIN: Mapping[str, LawFn] = {
    "linear": _linear,
    "gaussian_peak": _gaussian_peak,
    "domain_wall": _domain_wall,
}


@dataclass(frozen=True)
class ResolvedLaw:
    """A law ready to fit: its function, parameter names, priors and report units."""

    name: str
    fn: LawFn
    priors: Mapping[str, Mapping[str, float | str]]
    units: Mapping[str, str]

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names, in the law's order."""
        return tuple(self.priors)


def resolve_law(name: str, overrides: Mapping[str, Mapping] | None = None) -> ResolvedLaw:
    """The law ``name`` (built-in or ``package.module:function``) with its priors.

    Raises:
        ConfigError: Unknown law or parameter, a bad prior, or a user law that cannot be
            imported or lacks a prior for one of its parameters (one sentence).
    """
    overrides = dict(overrides or {})
    try:
        if is_user_law(name):
            fn = _user_law(name)
            params = [
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY
            ]
            missing = sorted(set(params) - set(overrides))
            unknown = sorted(set(overrides) - set(params))
            if missing or unknown or not params:
                raise ValueError(
                    f"user law '{name}' takes keyword-only parameters {params}; give "
                    f"policy.mean.priors exactly for those (missing {missing}, unknown {unknown})"
                )
            priors = {p: check_prior(name, p, overrides[p]) for p in params}
            return ResolvedLaw(name, fn, priors, {p: "user" for p in params})
        priors = resolve_priors(name, overrides)
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None
    info = LAWS.get(name)
    return ResolvedLaw(name, _BUILTIN[name], priors, {p.name: p.unit for p in info.params})


@lru_cache(maxsize=16)
def _user_law(reference: str) -> LawFn:
    return import_user_code(reference, "mean law")


def prior_mode(prior: Mapping[str, float | str]) -> float:
    """A central value of a prior (its mean; the mid-point of a uniform one)."""
    dist = prior["dist"]
    if dist == "normal":
        return float(prior["loc"])
    if dist == "lognormal":
        return math.exp(float(prior["loc"]))
    if dist == "gamma":
        return float(prior["concentration"]) / float(prior["rate"])
    return 0.5 * (float(prior["low"]) + float(prior["high"]))


def starts(law: ResolvedLaw, X: np.ndarray, z: np.ndarray) -> list[Start]:
    """Deterministic fit starts: the prior centres, then data-driven guesses (built-in laws).

    Args:
        law: The resolved law.
        X: Inputs, ``n x d``.
        z: Standardised targets, ``(n,)``.
    """
    base = {p: prior_mode(law.priors[p]) for p in law.params}
    out = [base]
    if len(z) < 3:
        return out
    if law.name == "gaussian_peak":
        dev = z - np.median(z)
        i = int(np.argmax(np.abs(dev)))
        out.append(
            {
                **base,
                "offset": float(np.median(z)),
                "amplitude": float(dev[i]),
                "centre_0": float(X[i, 0]),
                "centre_1": float(X[i, 1]),
            }
        )
    elif law.name == "domain_wall":
        out += _wall_starts(base, X, z)
    elif law.name == "linear":
        A = np.column_stack([np.ones(len(z)), X[:, 0] - 0.5, X[:, 1] - 0.5])
        coef = np.linalg.lstsq(A, z, rcond=None)[0]
        out.append({"offset": float(coef[0]), "slope_0": float(coef[1]), "slope_1": float(coef[2])})
    return out


def _wall_starts(base: Start, X: np.ndarray, z: np.ndarray, keep: int = 4) -> list[Start]:
    """The ``keep`` best stump splits over 8 normal directions, as wall starts."""
    found = []
    for angle in np.linspace(0.0, np.pi, 8, endpoint=False):
        along = (X[:, 0] - 0.5) * np.cos(angle) + (X[:, 1] - 0.5) * np.sin(angle)
        order = np.argsort(along, kind="stable")
        p, v = along[order], z[order]
        for k in range(1, len(v)):
            if p[k] <= p[k - 1] + 1e-12:
                continue
            lo, hi = v[:k].mean(), v[k:].mean()
            score = k * (len(v) - k) / len(v) * (hi - lo) ** 2
            found.append((score, float(angle), 0.5 * (p[k - 1] + p[k]), hi - lo, 0.5 * (hi + lo)))
    found.sort(key=lambda f: -f[0])
    out: list[Start] = []
    angles: list[float] = []
    for _score, angle, position, height, offset in found:
        if len(out) == keep:
            break
        if angle in angles:
            continue
        angles.append(angle)
        out.append(
            {
                **base,
                "angle": angle,
                "position": position,
                "height": float(height),
                "offset": float(offset),
            }
        )
    return out


def check_inputs(law: ResolvedLaw, X: np.ndarray) -> None:
    """ModelError unless a built-in law can read ``X`` (it uses the first two columns)."""
    if not is_user_law(law.name) and X.shape[1] < 2:
        raise ModelError(
            f"mean law '{law.name}' reads two input coordinates but the space has "
            f"{X.shape[1]}; use a pixel grid or a user law."
        )
