"""Fidelity as a choice: (location, dwell) by map information per price (policy ``fidelity``).

An instrument that :class:`~coscope.instruments.base.Dwells` offers relative dwell times
``d``: a measurement of dwell ``d`` has noise variance ``s^2 / d``; its price is whatever the
campaign's price function says (the simulated microscope: a fixed overhead plus the dwell,
``docs/fidelity.md``). This agent learns the campaign's scalar target over a
finite space with an exact GP that knows each observation's noise, and picks the pair
``(x, d)`` with the most information per cost::

    value(x, d) = mean_r cov(x, r)^2 / (var(x) + s^2 / d)  /  price(x, d)

the reduction of the posterior variance averaged over reference cells ``r`` (the map's
integrated variance, what a map RMSE follows) by one measurement at ``x`` of dwell ``d``,
divided by ``ask.price(instrument, modality, x, {"dwell": d})`` — the campaign's one price
function, the same the accounting charges.

**Noise per observation.** The GP is fitted as :class:`~coscope.agents.agent.GPAgent`'s
(kind ``gp``, on the loop's executor when due): its homoscedastic noise ``n_h`` is the data's
average noise. The base noise is ``s^2 = n_h / mean(1 / d_i)`` over the training rows, and the
surrogate used for maps and choices is the same kernel and mean with fixed per-observation
noise ``s^2 / d_i`` (botorch's ``SingleTaskGP`` with ``train_Yvar``). Pending measurements
enter the variance with their own dwell's noise (a variance needs no value).

Dwells come from the decisions' request params (``params["dwell"]``, in the trace):
its own proposals, and :meth:`remember_params` on resume and replay. Seed points and the
initial random design are measured at the reference dwell 1.0 (or the middle one offered).
An instrument that offers no dwells gets plain proposals, priced without params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize

from coscope.agents.agent import GPAgent
from coscope.agents.protocols import Ask
from coscope.instruments.base import DWELL, reference_dwell
from coscope.models import GPState, load_model, predict
from coscope.models.gp import gp_scalars
from coscope.spaces import Space
from coscope.types import FitRecord, Location, Proposal

N_REFERENCE = 256
"""Default number of reference cells the map's variance is averaged over."""
JITTER = 1e-8
"""Added to the diagonal (standardised units) before the Cholesky factorisation."""


def variance_reduction(
    kernel: Any,
    X_train: torch.Tensor,
    noise: torch.Tensor,
    C: torch.Tensor,
    R: torch.Tensor,
    new_noise: Sequence[float],
) -> np.ndarray:
    """Mean reduction of the posterior variance over ``R`` by one observation at each of ``C``.

    Args:
        kernel: A gpytorch kernel ``k(A, B)``.
        X_train: Inputs the posterior is conditioned on, ``n x d``.
        noise: Their noise variances, ``(n,)`` (kernel units).
        C: Candidates, ``c x d``.
        R: Reference points, ``r x d``.
        new_noise: Noise variances of the new observation, ``k`` options (kernel units).

    Returns:
        ``c x k``: ``mean_r cov(c, r)^2 / (var(c) + new_noise[j])``, kernel units.
    """
    with torch.no_grad():
        K = kernel(X_train, X_train).to_dense() + torch.diag(noise + JITTER)
        L = torch.linalg.cholesky(K)
        A_R = torch.linalg.solve_triangular(L, kernel(X_train, R).to_dense(), upper=False)
        A_C = torch.linalg.solve_triangular(L, kernel(X_train, C).to_dense(), upper=False)
        cov = kernel(C, R).to_dense() - A_C.T @ A_R
        var = (kernel(C, C, diag=True) - (A_C**2).sum(0)).clamp_min(0.0)
        num = (cov**2).mean(1)
        out = [num / (var + float(s)) for s in new_noise]
    return torch.stack(out, dim=1).numpy()


class FidelityAgent(GPAgent):
    """Cost-aware multi-fidelity map learning over a finite space (policy ``fidelity``).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        dwells: Instrument name -> relative dwell times it offers (its
            :meth:`~coscope.instruments.base.Dwells.dwells`); others get no dwell param.
        policy_params: ``{"n_reference": 256}`` (reference cells of the map average).
        **kwargs: See :class:`~coscope.agents.base.GridAgent`.
    """

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        dwells: Mapping[str, Sequence[float]],
        policy_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("policy", None)
        super().__init__(grid_shape, policy="maxvar", **kwargs)
        self.policy_name = "fidelity"
        self.policy_params = dict(policy_params or {})
        self.n_reference = int(self.policy_params.get("n_reference", N_REFERENCE))
        self.dwells = {k: tuple(sorted(float(d) for d in v)) for k, v in dwells.items() if v}
        self._dwell: dict[int, float] = {}
        self.base_noise = float("nan")
        """Noise variance ``s^2`` of a dwell-1 observation, ``y`` units (NaN before a fit)."""

    # ------------------------------------------------------------------ params
    def remember_params(self, step: int, params: Mapping[str, Any]) -> None:
        """Keep the dwell of decision ``step`` (1.0 when its params name none)."""
        self._dwell[int(step)] = float(params.get(DWELL, 1.0))

    def dwell_of(self, step: int) -> float:
        """The dwell decision ``step`` was measured at (1.0 when unknown)."""
        return self._dwell.get(int(step), 1.0)

    # ------------------------------------------------------------------ the surrogate
    def load_fit(self, state: GPState, version: int, step: int | None = None) -> FitRecord:
        """Load ``state`` (:meth:`GPAgent.load_fit`), then use its kernel with per-observation
        noise ``s^2 / d_i`` (module docstring)."""
        record = super().load_fit(state, version, step)
        self._model = self._heteroscedastic(state)
        return record

    def condition_on(self, state: Any) -> None:
        """Retrace: predict and score with ``state`` and per-observation noise."""
        super().condition_on(state)
        self._model = self._heteroscedastic(state)

    def _heteroscedastic(self, state: GPState) -> SingleTaskGP:
        homo = load_model(state)
        steps = [o.step for o in self.observations[: state.n_train]]
        inverse = np.array([1.0 / self.dwell_of(s) for s in steps])
        noise_h = gp_scalars(homo)["noise"]
        self.base_noise = max(noise_h / float(inverse.mean()), 1e-12)
        model = SingleTaskGP(
            torch.as_tensor(state.X, dtype=torch.float64),
            torch.as_tensor(state.y, dtype=torch.float64).unsqueeze(-1),
            train_Yvar=torch.as_tensor(self.base_noise * inverse).unsqueeze(-1),
            outcome_transform=Standardize(m=1),
        )
        shared = {k: v for k, v in homo.state_dict().items() if not k.startswith("likelihood.")}
        model.load_state_dict(shared, strict=False)
        model.eval()
        return model

    # ------------------------------------------------------------------ scoring
    def information(
        self, pending: Sequence[tuple[int, float]], dwells: Sequence[float]
    ) -> np.ndarray:
        """Map variance reduction (``y`` units^2) of one measurement at every candidate for
        each of ``dwells``, ``(H*W) x k``, given ``pending`` ``(flat index, dwell)`` in flight.

        The reference cells are a seeded subset of the space's candidates (at most
        ``n_reference``), the same for every decision on the same data.
        """
        model = self._model
        scale = float(model.outcome_transform.stdvs.reshape(-1)[0]) ** 2
        X = model.train_inputs[0]
        noise = model.likelihood.noise.reshape(-1)
        if pending:
            idx = [i for i, _ in pending]
            X = torch.cat([X, torch.as_tensor(self.candidates[idx], dtype=torch.float64)])
            extra = [self.base_noise / d / scale for _, d in pending]
            noise = torch.cat([noise, torch.as_tensor(extra, dtype=torch.float64)])
        allowed = np.flatnonzero(~self.outside)
        rng = np.random.default_rng([self.seed, 7919, self.n_observations])
        if allowed.size > self.n_reference:
            allowed = np.sort(rng.choice(allowed, size=self.n_reference, replace=False))
        R = torch.as_tensor(self.candidates[allowed], dtype=torch.float64)
        C = self._candidates_tensor()
        new_noise = [self.base_noise / d / scale for d in dwells]
        out = np.concatenate(
            [
                variance_reduction(model.covar_module, X, noise, C[i : i + 1024], R, new_noise)
                for i in range(0, C.shape[0], 1024)
            ]
        )
        return out * scale

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Map information of a reference (dwell 1) measurement at every candidate, ``(H*W,)``
        (retrace's map; decisions divide by the price, :meth:`propose`)."""
        pending = [(int(i), 1.0) for i in believed]
        return self.information(pending, [1.0])[:, 0]

    # ------------------------------------------------------------------ deciding
    def propose(self, ask: Ask) -> Proposal | None:
        """The ``(location, dwell)`` of the most map information per price for ``ask``.

        Seed points and the initial design: :meth:`GPAgent.propose` at the reference dwell.
        """
        modality = self.scalar_target.modality
        dwells = self.dwells.get(ask.instrument)
        if modality not in ask.offered:
            return None
        pending_locs = [p.location for p in ask.pending]
        excluded = self._excluded(pending_locs)
        n_pending = len(set(pending_locs))
        early = self.n_observations + n_pending < self.n_initial or any(
            not excluded[self._flat(s)] for s in self.seed_points
        )
        if not dwells or early or excluded.all() or not self._ensure_model(ask.step):
            return self._plain(ask, dwells)
        pending = [(self._flat(p.location), float(p.params.get(DWELL, 1.0))) for p in ask.pending]
        info = self.information(pending, dwells)
        free = np.flatnonzero(~excluded)
        best = (-np.inf, -1, dwells[0], 0.0)
        for i in free.tolist():
            loc = Location.from_flat(i, self.grid_shape[1])
            for j, d in enumerate(dwells):
                price = float(ask.price(ask.instrument, modality, loc, {DWELL: d}))
                value = info[i, j] / max(price, 1e-12)
                if value > best[0]:
                    best = (value, i, d, price)
        value, i, d, price = best
        if i < 0:  # no finite value (a degenerate fit): fall back as before a model
            return self._plain(ask, dwells)
        params = {DWELL: d}
        self.remember_params(ask.step, params)
        mean, std = self.predict_at([i])
        return Proposal(
            step=ask.step,
            instrument=ask.instrument,
            modality=modality,
            location=Location.from_flat(i, self.grid_shape[1]),
            policy=self.policy_name,
            score=float(value),
            expected_cost=price,
            model_version=self.model_version,
            predicted_mean=float(mean[0]),
            predicted_std=float(std[0]),
            params=params,
        )

    def _plain(self, ask: Ask, dwells: tuple[float, ...] | None) -> Proposal | None:
        """:meth:`GPAgent.propose` (seed, random, or maxvar), at the reference dwell."""
        chosen = super().propose(ask)
        if chosen is None or not dwells:
            return chosen
        params = {DWELL: reference_dwell(dwells)}
        self.remember_params(ask.step, params)
        price = float(ask.price(ask.instrument, chosen.modality, chosen.location, params))
        return replace(chosen, expected_cost=price, params=params)

    def predict_at(self, flat: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of the loaded surrogate at candidates ``flat``."""
        return predict(self._model, self.candidates[list(flat)])
