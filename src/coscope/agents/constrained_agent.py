"""Constrained EI over a finite space: outcome constraints and learned feasibility.

The objective is the agent's scalar target, fitted as by :class:`~coscope.agents.agent.GPAgent`
(on the loop's executor when due). Besides it the agent keeps, per measurement of the target
modality, the values of every **outcome constraint** (other scalarizers of the same signal:
``loop_height >= 0.5``) and fits one exact GP per constraint on the same locations. The score
of a candidate is botorch's
:class:`~botorch.acquisition.analytic.LogConstrainedExpectedImprovement` on the
``ModelListGP`` (objective, constraints…): ``log EI(x) + sum_j log P(c_j(x) within bounds)``,
the improvement over the best *feasible* observation. Before any observation is feasible it
is ``sum_j log P(c_j(x) within bounds)``: find the feasible region first.

With **learned feasibility** the decisions whose measurement failed and was retired (the
failure policy, ``failures:``) are labelled infeasible (−1), the measured ones feasible (+1);
an exact GP on those labels gives ``p_measurable(x) = P(f(x) > 0) = Phi(mean / std)`` and
``log p_measurable`` is added to the score, so the agent stops spending where measurements
fail. Without any failure ``p_measurable`` is 1 everywhere.

With ``min_p_feasible`` > 0 a candidate whose ``p_feasible`` (the product of every factor)
is below it ranks after every other candidate (a chance constraint): it is proposed only when
nothing likelier feasible is left.

Every auxiliary GP is fitted in-process, seeded from the campaign seed and the data, when the
data it serves changes: the same data give the same decisions (resume, replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from botorch.acquisition.analytic import LogConstrainedExpectedImprovement
from botorch.models import ModelListGP
from scipy.special import log_ndtr

from coscope.agents.acquisition import believing, build_acquisition
from coscope.agents.agent import GPAgent
from coscope.agents.base import finite_values
from coscope.agents.protocols import OutcomeConstraints
from coscope.errors import ModelError
from coscope.models import fit_gp, load_model, predict
from coscope.spaces import Space
from coscope.types import Location, Measurement, Proposal

LOG_FLOOR = -30.0
"""Smallest log-probability a factor contributes (``p ~ 1e-13``): scores stay finite."""
BELOW_FLOOR = 1e4
"""Taken off the score of a candidate below ``min_p_feasible``: it ranks after every other."""


class ConstrainedAgent(GPAgent):
    """Log-EI weighted by the probability of feasibility (policy ``ei`` with ``constraints``
    and/or ``feasibility: learn``).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        constraints: Outcome constraints of the target modality, or ``None``.
        learn_feasibility: Learn retired failed decisions as infeasible.
        min_p_feasible: Candidates less likely feasible than this rank last (0: none).
        **kwargs: See :class:`~coscope.agents.agent.GPAgent` (``policy`` is ``ei``).
    """

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        constraints: OutcomeConstraints | None = None,
        learn_feasibility: bool = False,
        min_p_feasible: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("policy", None)
        super().__init__(grid_shape, policy="ei", **kwargs)
        self.constraints = constraints
        self.learn_feasibility = bool(learn_feasibility)
        self.min_p_feasible = float(min_p_feasible)
        self._cvalues: dict[int, np.ndarray] = {}
        self._infeasible: dict[int, Location] = {}
        self._aux_key: tuple[Any, ...] | None = None
        self._cmodels: list[Any] = []
        self._log_measurable: np.ndarray | None = None
        self._last: dict[str, np.ndarray] = {}
        self._chosen: dict[int, dict[str, float]] = {}

    # ------------------------------------------------------------------ data
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Constraint values of the target modality's measurements, then the target."""
        found = self.constraints
        if found is not None:
            for m in (m for m in measurements if m.modality == found.modality):
                self._cvalues[m.step] = finite_values(found.of(m.signal), m.step, "Constraints")
        super().ingest_measurements(measurements)

    def mark_infeasible(self, step: int, location: Location) -> None:
        """Decision ``step`` at ``location`` failed and was retired (learned when enabled)."""
        if self.learn_feasibility:
            self.space.check(location, "infeasible decision")
            self._infeasible[int(step)] = location

    def decision_feasibility(self, step: int) -> dict[str, float]:
        """``p_feasible`` and its factors at decision ``step``'s point (empty if none)."""
        return self._chosen.pop(int(step), {})

    # ------------------------------------------------------------------ models
    def _fit_aux(self) -> None:
        """Fit the constraint GPs and the feasibility classifier if their data changed."""
        subset = self._fit_subset()
        key = (tuple(o.step for o in subset), tuple(sorted(self._infeasible)))
        if key == self._aux_key:
            return
        X, _ = self.training_data()
        seed = self.fit_seed()
        self._cmodels = []
        if self.constraints is not None and len(subset):
            C = np.array([self._cvalues[o.step] for o in subset]).reshape(len(subset), -1)
            self._cmodels = [
                load_model(fit_gp(X, C[:, j], seed=seed + 1 + j, iterations=self.fit_iterations))
                for j in range(C.shape[1])
            ]
        self._log_measurable = None
        if self._infeasible:
            failed = [self._flat(loc) for loc in self._infeasible.values()]
            measured = [self._flat(o.location) for o in self.observations]
            Xc = self.candidates[measured + failed]
            labels = np.r_[np.ones(len(measured)), -np.ones(len(failed))]
            state = fit_gp(Xc, labels, seed=seed + 97, iterations=self.fit_iterations)
            mean, std = predict(load_model(state), self.candidates, batch_size=self.batch_size)
            self._log_measurable = np.maximum(log_ndtr(mean / np.maximum(std, 1e-9)), LOG_FLOOR)
        self._aux_key = key

    def _feasible_best(self) -> float | None:
        """Best target value among the fitted observations that satisfy every constraint."""
        subset = self._fit_subset()
        if self.constraints is None:
            return max((o.value for o in subset), default=None)
        C = np.array([self._cvalues[o.step] for o in subset]).reshape(len(subset), -1)
        ok = self.constraints.holds(C)
        values = [o.value for o, good in zip(subset, ok, strict=True) if good]
        return max(values, default=None)

    def _log_constraints(self, models: Sequence[Any]) -> np.ndarray:
        """``sum_j log P(c_j within bounds)`` at every candidate, ``(H*W,)``."""
        assert self.constraints is not None
        total = np.zeros(self.candidates.shape[0])
        bounds = zip(self.constraints.lower, self.constraints.upper, strict=True)
        for model, (lo, hi) in zip(models, bounds, strict=True):
            mean, std = predict(model, self.candidates, batch_size=self.batch_size)
            std = np.maximum(std, 1e-9)
            if lo is not None:
                total += np.maximum(log_ndtr((mean - lo) / std), LOG_FLOOR)
            if hi is not None:
                total += np.maximum(log_ndtr((hi - mean) / std), LOG_FLOOR)
        return total

    # ------------------------------------------------------------------ scoring
    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Constrained log-EI of every candidate, ``(H*W,)``, ``believed`` pixels pending
        (kriging believers, as :meth:`GPAgent.scores`; retired decisions among them)."""
        if self._model is None or self._state is None:
            raise ModelError("No model is loaded; call fit() first.")
        self._fit_aux()
        points = self.candidates[list(believed)]
        objective: Any = believing(self._model, points)  # exact GPs (GPyTorchModel)
        cmodels: list[Any] = [believing(m, points) for m in self._cmodels]
        best = self._feasible_best()
        n = self.candidates.shape[0]
        log_c = self._log_constraints(cmodels) if cmodels else np.zeros(n)
        if best is None:  # nothing feasible measured yet: find the feasible region
            scores = log_c.copy()
        elif cmodels:
            assert self.constraints is not None
            bounds = zip(self.constraints.lower, self.constraints.upper, strict=True)
            acqf = LogConstrainedExpectedImprovement(
                ModelListGP(objective, *cmodels),
                best_f=float(best),
                objective_index=0,
                constraints={j + 1: b for j, b in enumerate(bounds)},
            )
            scores = self._evaluate(acqf)
        else:
            scores = self._evaluate(build_acquisition("ei", objective, best_f=float(best)))
        log_m = self._log_measurable if self._log_measurable is not None else np.zeros(n)
        self._last = {"log_c": log_c, "log_m": log_m}
        out = np.asarray(scores, dtype=np.float64) + log_m
        if self.min_p_feasible > 0:
            out = out - BELOW_FLOOR * (log_c + log_m < np.log(self.min_p_feasible))
        return out

    def suggest(self, n: int, **kwargs: Any) -> list[Proposal]:
        """:meth:`GPAgent.suggest`, remembering ``p_feasible`` of each policy pick."""
        proposals = super().suggest(n, **kwargs)
        if self._last:
            for p in proposals:
                if p.policy != self.policy_name:
                    continue
                i = self._flat(p.location)
                log_c, log_m = float(self._last["log_c"][i]), float(self._last["log_m"][i])
                row = {"p_feasible": float(np.exp(log_c + log_m))}
                if self.constraints is not None:
                    row["p_constraints"] = float(np.exp(log_c))
                if self.learn_feasibility:
                    row["p_measurable"] = float(np.exp(log_m))
                self._chosen[p.step] = row
        return proposals
