"""Structured GP: a physical law with priors as the GP's mean, the GP learning the residual.

Model (standardised target ``z = (y - ybar) / s_y``, botorch's Standardize):

    z(x) = law(x; theta) + f(x),   f ~ GP(0, k_RBF-ARD),   z_obs = z + eps

The law and the priors on ``theta`` come from :mod:`coscope.laws` (declarations) and
:mod:`coscope.models.laws` (torch forms). :class:`LawMean` is a gpytorch ``Mean`` whose
parameters carry registered gpytorch priors, so botorch's ``fit_gpytorch_mll`` on the
``ExactMarginalLogLikelihood`` (which adds every registered log prior) finds the MAP of
``theta`` jointly with the kernel lengthscales and the noise. A parameter whose prior lives
on an interval (uniform) or on ``(0, inf)`` (gamma, lognormal) is constrained to it
(gpytorch ``Interval`` / ``Positive``), so the optimiser never leaves the prior's support.

The fit starts L-BFGS from the prior centres and from data-driven guesses
(:func:`coscope.models.laws.starts`) and keeps the lowest negative log posterior (first on
ties); all inside ``torch.random.fork_rng`` seeded with ``seed`` (deterministic).

Uncertainty of ``theta`` (:func:`laplace_std`): a Laplace approximation *conditional on the
kernel and noise at their MAP*: the inverse Hessian of the negative log posterior with
respect to the law's raw parameters (central differences of its autograd gradient), mapped
through each constraint's derivative (delta method). NaN where the Hessian is not positive
definite there (a flat or saddle direction: the data do not pin that parameter).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.constraints import Interval, Positive
from gpytorch.means import Mean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior, LogNormalPrior, NormalPrior, Prior, UniformPrior

from coscope.models.gp import DTYPE, GPState, fit_mll, gp_scalars
from coscope.models.laws import ResolvedLaw, check_inputs, resolve_law, starts
from coscope.models.training import check_training_data

_PRIORS = {
    "normal": lambda p: NormalPrior(p["loc"], p["scale"]),
    "lognormal": lambda p: LogNormalPrior(p["loc"], p["scale"]),
    "gamma": lambda p: GammaPrior(p["concentration"], p["rate"]),
    "uniform": lambda p: UniformPrior(p["low"], p["high"]),
}


def _prior(spec: Mapping) -> Prior:
    return _PRIORS[str(spec["dist"])](
        {k: torch.tensor(float(v), dtype=DTYPE) for k, v in spec.items() if k != "dist"}
    )


def _constraint(spec: Mapping) -> Interval | None:
    """The support of a prior as a gpytorch constraint (None: the real line)."""
    if spec["dist"] == "uniform":
        return Interval(float(spec["low"]), float(spec["high"]))
    if spec["dist"] in ("gamma", "lognormal"):
        return Positive()
    return None


class LawMean(Mean):
    """``x -> law(x; theta)``: a gpytorch mean with one prior-carrying parameter per ``theta``.

    Parameters are ``raw_<name>`` (0-d, constrained by the prior's support); :meth:`value`
    gives ``theta[name]``. Input ``... x n x d``, output ``... x n`` (standardised units).
    """

    def __init__(self, law: ResolvedLaw) -> None:
        super().__init__()
        self.law = law
        for name, spec in law.priors.items():
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(torch.zeros((), dtype=DTYPE)))
            constraint = _constraint(spec)
            if constraint is not None:
                self.register_constraint(f"raw_{name}", constraint)
            self.register_prior(
                f"{name}_prior",
                _prior(spec),
                lambda m, n=name: m.value(n),
                lambda m, v, n=name: m.set_value(n, v),
            )

    def _constraint_of(self, name: str) -> Interval | None:
        return self._constraints.get(f"raw_{name}_constraint")

    def value(self, name: str) -> torch.Tensor:
        """``theta[name]`` (0-d tensor)."""
        raw = getattr(self, f"raw_{name}")
        constraint = self._constraint_of(name)
        return raw if constraint is None else constraint.transform(raw)

    def set_value(self, name: str, value: float | torch.Tensor) -> None:
        """Set ``theta[name]`` (clipped just inside an interval's bounds)."""
        raw = getattr(self, f"raw_{name}")
        v = torch.as_tensor(value, dtype=DTYPE)
        constraint = self._constraint_of(name)
        if constraint is not None:
            lo, hi = float(constraint.lower_bound), float(constraint.upper_bound)
            span = hi - lo if np.isfinite(hi) else max(abs(lo), 1.0)
            v = v.clamp(lo + 1e-6 * span, hi - 1e-6 * span if np.isfinite(hi) else None)
            v = constraint.inverse_transform(v)
        with torch.no_grad():
            raw.copy_(v.reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.law.fn(x, **{n: self.value(n) for n in self.law.params})


def _build(X: np.ndarray, y: np.ndarray, law: ResolvedLaw) -> SingleTaskGP:
    train_X = torch.as_tensor(X, dtype=DTYPE)
    train_Y = torch.as_tensor(y, dtype=DTYPE).unsqueeze(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input-range checks on tiny n
        return SingleTaskGP(
            train_X, train_Y, mean_module=LawMean(law), outcome_transform=Standardize(m=1)
        )


@dataclass(frozen=True, eq=False)
class StructuredGPState(GPState):
    """A fitted structured GP as plain data (see :class:`~coscope.models.gp.GPState`).

    Attributes:
        law: The law's name (built-in or ``package.module:function``).
        priors: Every parameter's prior (``{name: {"dist": ..., args}}``), as fitted.
        theta: MAP law parameters, reported units (module :mod:`coscope.laws`: ``z`` and
            ``z_level`` parameters converted to target units).
        theta_std: Conditional-Laplace standard deviations of ``theta``, same units.
    """

    law: str = ""
    priors: Mapping[str, Mapping[str, float | str]] = field(default_factory=dict)
    theta: Mapping[str, float] = field(default_factory=dict)
    theta_std: Mapping[str, float] = field(default_factory=dict)

    def new_model(self) -> SingleTaskGP:
        """An unfitted structured model on this state's data (imports a user law)."""
        return _build(self.X, self.y, resolve_law(self.law, self.priors))

    def named_hyperparameters(self) -> dict[str, float]:
        """The GP's scalars (:func:`~coscope.models.gp.gp_scalars`), ``law`` (its name) and
        ``law.<name>`` / ``law.<name>.std`` per parameter (MAP and Laplace std)."""
        out: dict = gp_scalars(_loaded(self))
        out["law"] = self.law
        for name, value in self.theta.items():
            out[f"law.{name}"] = float(value)
            out[f"law.{name}.std"] = float(self.theta_std[name])
        return out


def _loaded(state: StructuredGPState) -> SingleTaskGP:
    model = state.new_model()
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.hyperparameters.items()})
    return model


def fit_structured(
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    iterations: int = 100,
    law: str = "gaussian_peak",
    priors: Mapping[str, Mapping] | None = None,
) -> StructuredGPState:
    """MAP fit of a structured GP from scratch (deterministic in data, law, priors, seed).

    Args:
        X: Inputs, ``n x d`` float64 in ``[0, 1]^d`` (``d >= 2`` for a built-in law).
        y: Targets, ``(n,)`` float64, finite.
        seed: Seed of the only randomness (botorch's retry from the priors).
        iterations: Maximum L-BFGS iterations per start.
        law: Law name (:mod:`coscope.laws`).
        priors: Prior overrides by parameter name (all of a user law's parameters).

    Raises:
        ConfigError: Unknown law or parameter, bad prior, user law not importable.
        ModelError: Bad training data, or too few input columns for the law.
    """
    X, y = check_training_data(X, y, "structured GP", "X")
    resolved = resolve_law(law, priors)
    check_inputs(resolved, X)
    t0 = time.perf_counter()
    best: tuple[SingleTaskGP, float] | None = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        z = _build(X, y, resolved).train_targets.numpy()
        for start in starts(resolved, X, z):
            model = _build(X, y, resolved)
            for name, value in start.items():
                model.mean_module.set_value(name, value)
            fitted = fit_mll(model, iterations, lambda: _build(X, y, resolved))
            if best is None or fitted[1] < best[1]:
                best = fitted
    assert best is not None
    model, loss = best
    theta, theta_std = _report(model, resolved, laplace_std(model))
    state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return StructuredGPState(
        X,
        y,
        state,
        loss,
        time.perf_counter() - t0,
        int(seed),
        law=resolved.name,
        priors=resolved.priors,
        theta=theta,
        theta_std=theta_std,
    )


def laplace_std(model: SingleTaskGP, step: float = 1e-4) -> dict[str, float]:
    """Conditional-Laplace std of each law parameter (module docstring), standardised units.

    Args:
        model: A fitted structured model (train mode).
        step: Central-difference step on the raw parameters.
    """
    mean: LawMean = model.mean_module
    names = list(mean.law.params)
    raws = [getattr(mean, f"raw_{n}") for n in names]
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    n_points = model.train_targets.shape[-1]

    def grad_at(theta: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for raw, value in zip(raws, theta, strict=True):
                raw.copy_(value)
        for raw in raws:
            raw.grad = None
        loss = -mll(model(*model.train_inputs), model.train_targets) * n_points
        return torch.stack(torch.autograd.grad(loss, raws))

    centre = torch.stack([r.detach().clone() for r in raws])
    hessian = torch.zeros(len(names), len(names), dtype=DTYPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(names)):
            bump = torch.zeros_like(centre)
            bump[i] = step
            hessian[i] = (grad_at(centre + bump) - grad_at(centre - bump)) / (2 * step)
        grad_at(centre)  # leave the MAP in place
    hessian = 0.5 * (hessian + hessian.T)
    try:
        cov = torch.linalg.inv(torch.linalg.cholesky(hessian))
        var_raw = (cov.T @ cov).diagonal()
    except RuntimeError:  # not positive definite: no local Gaussian to report
        var_raw = torch.full((len(names),), float("nan"), dtype=DTYPE)
    out = {}
    for i, name in enumerate(names):
        raw = centre[i].clone().requires_grad_(True)
        constraint = mean._constraint_of(name)
        value = raw if constraint is None else constraint.transform(raw)
        (slope,) = torch.autograd.grad(value, raw, allow_unused=True)
        slope = torch.ones(()) if slope is None else slope
        out[name] = float(abs(slope) * var_raw[i].sqrt())
    return out


def _report(
    model: SingleTaskGP, law: ResolvedLaw, std: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """MAP values and stds in reported units (``z`` times ``s_y``; ``z_level`` shifted)."""
    ybar = float(model.outcome_transform.means.reshape(-1)[0])
    s_y = float(model.outcome_transform.stdvs.reshape(-1)[0])
    theta, theta_std = {}, {}
    for name in law.params:
        value = float(model.mean_module.value(name).detach())
        unit = law.units[name]
        scale = s_y if unit in ("z", "z_level") else 1.0
        theta[name] = ybar + s_y * value if unit == "z_level" else scale * value
        theta_std[name] = scale * std[name]
    return theta, theta_std
