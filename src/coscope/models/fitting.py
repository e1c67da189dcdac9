"""One fitting entry point: ``fit_model(kind, X, y, seed, iterations)`` for every surrogate.

Callers that run fits elsewhere (the ``fit`` Prefect task, Dask executors) pass the model
*kind* — a name, plain data — and get a plain-data state back; the kind is registered here
with its fitting function, so a new surrogate is one :func:`register_model` away.

Registered kinds:
    * ``"gp"``: :func:`coscope.models.gp.fit_gp` on ``X`` (``n x d`` in ``[0, 1]^d``).
    * ``"dkl"``: :func:`coscope.models.dkl.fit_dkl` on ``X`` = features (``n x p``);
      options ``latent_dim`` (default 2) and ``lr`` (default 0.01).
    * ``"multitask"``: :func:`coscope.models.multitask.fit_multitask` on ``X`` = inputs plus
      a last task-index column; options ``n_tasks`` and ``rank``.
    * ``"shared_gp"``: :func:`coscope.models.shared_fit.fit_shared_gp` on ``X`` (``n x d``
      in ``[0, 1]^d``) and ``y`` = whole signals (``n x m``); co-navigation's surrogates.
    * ``"structured"``: :func:`coscope.models.structured.fit_structured` on ``X`` (``n x d``
      in ``[0, 1]^d``); options ``law`` (a :mod:`coscope.laws` name or a user's
      ``package.module:function``) and ``priors`` (overrides by parameter).
    * ``"vae"``: :func:`coscope.models.vae.fit_vae` on ``X`` = spectra (``n x m``), ``y``
      ignored; options ``latent_dim`` (default 2) and ``hidden`` (default 32).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from coscope.errors import ConfigError
from coscope.models.dkl import fit_dkl
from coscope.models.gp import fit_gp
from coscope.models.multitask import fit_multitask
from coscope.models.shared_fit import fit_shared_gp
from coscope.models.structured import fit_structured
from coscope.models.vae import fit_vae
from coscope.registry import Registry

ModelFitter = Callable[..., Any]
"""``(X, y, *, seed, iterations, **options) -> state`` (plain data with ``.record``)."""

MODELS: Registry[ModelFitter] = Registry("model kind")
register_model = MODELS.register
model_kinds = MODELS.names

register_model("gp")(fit_gp)
register_model("dkl")(fit_dkl)
register_model("multitask")(fit_multitask)
register_model("shared_gp")(fit_shared_gp)
register_model("structured")(fit_structured)
register_model("vae")(fit_vae)


def fit_model(
    kind: str, X: np.ndarray, y: np.ndarray, seed: int, iterations: int, **options: Any
) -> Any:
    """Fit the surrogate of ``kind`` from scratch on ``X``, ``y``; returns its plain state.

    Args:
        kind: Registered model kind (``"gp"``, ``"dkl"``).
        X: Inputs, ``n x d`` (coordinates for ``"gp"``, features for ``"dkl"``).
        y: Targets, ``(n,)``.
        seed: Fit seed (deterministic fits: same data and seed, same state).
        iterations: Optimiser iterations.
        **options: Keyword options of that kind's fitter (e.g. ``latent_dim`` for DKL).

    Raises:
        ConfigError: Unknown kind, or an option that kind does not take.
    """
    fitter = MODELS.get(kind)
    allowed = set(inspect.signature(fitter).parameters) - {"X", "F", "y", "seed", "iterations"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"Model kind {kind!r} does not take option(s) {unknown}; it takes: "
            f"{sorted(allowed) or 'none'}."
        )
    return fitter(X, y, seed=int(seed), iterations=int(iterations), **options)


Fitter = Callable[..., Any]
"""``(kind, X, y, seed, iterations, options) -> state``: ``Executor.fit``'s signature. Agents
that fit models themselves call one; the loop hands them its executor's ``fit`` (Dask)."""


def fit_here(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    iterations: int,
    options: dict[str, Any] | None = None,
) -> Any:
    """The in-process :data:`Fitter`: :func:`fit_model` with ``options`` as keywords."""
    return fit_model(kind, X, y, seed, iterations, **(options or {}))
