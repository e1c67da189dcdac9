"""The co-orchestrating agent: a multi-task GP over every modality, (modality, location) chosen.

A :class:`~coscope.agents.protocols.ModalityChooser`. Each modality's signal is reduced to one
scalar by its scalarizer (the campaign's target scalarizer for the target modality, the
spec's ``auxiliary`` scalarizers for the others); the scalars of all modalities, each
measured wherever it was measured (heterotopic), train one ICM multi-task GP
(:mod:`coscope.models.multitask`) over grid coordinates in ``[0, 1]^2``. With a single
modality (the baseline) it is a single-task GP with the same kernel and rules.

Rules (``policy``):
    * ``gain_per_cost``: maximise ``G(m, x) / cost(m, x)``, ``G`` the expected reduction of the
      target's mean posterior variance over the grid (:mod:`coscope.agents.knowledge_gain`),
      ``cost`` the campaign's (possibly state-dependent) cost function.
    * ``max_uncertainty``: the reference's rule, maximise the posterior variance of
      ``f(x, m)`` (standard units of ``m``) over every offered (modality, location), cost-blind.

Until ``n_initial`` measurements (all modalities) are in, it proposes seeded random locations,
cycling through the offered modalities. Pending proposals of every instrument are excluded
and enter the posterior as fantasies. Decisions are deterministic in (seed, step, data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coscope.agents.base import AgentReport
from coscope.agents.knowledge_gain import knowledge_gain, posterior_terms
from coscope.agents.protocols import CostFunction
from coscope.models.multitask import (
    MultiTaskState,
    fit_multitask,
    load_multitask,
    task_covariance,
    task_noise,
)
from coscope.scalarizers import scalarize
from coscope.types import FitRecord, Location, Measurement, Proposal

CHOOSER_POLICIES = ("gain_per_cost", "max_uncertainty")
"""Policy names served by :class:`MultiTaskAgent`."""


@dataclass(frozen=True)
class Reducer:
    """How one modality's signal becomes a scalar: scalarizer ``name``, ``params``, ``axis``."""

    name: str
    params: Mapping[str, float]
    axis: np.ndarray

    def __call__(self, signal: np.ndarray) -> float:
        return float(scalarize(self.name, signal, self.axis, dict(self.params)))


class MultiTaskAgent:
    """Multi-task GP agent choosing modality and location (see module docstring).

    Args:
        grid_shape: ``(H, W)``.
        reducers: Modality -> :class:`Reducer`; the first key is the target modality.
        policy: One of :data:`CHOOSER_POLICIES`.
        seed: Campaign seed.
        n_initial: Measurements (all modalities) before the model takes over, >= 1.
        refit_every: Refit when this many new measurements arrived since the last fit.
        fit_iterations: L-BFGS iteration cap per fit.
        rank: Task covariance rank (default: number of modalities).
        n_candidates: Cap on candidate (modality, location) pairs scored per decision.
        n_reference: Cap on reference points ``Z`` of the integrated variance.
        refit_growth: Refit when the data grew by this factor too (1.5 from 6: fits at 6,
            9, 14, 21 … points; see :meth:`_fit_size`); between fits the model is conditioned
            on all data with the last hyperparameters, so decisions always use every point.
    """

    model_kind = "multitask"

    def __init__(
        self,
        grid_shape: tuple[int, int],
        reducers: Mapping[str, Reducer],
        *,
        policy: str = "gain_per_cost",
        seed: int = 0,
        n_initial: int = 5,
        refit_every: int = 1,
        fit_iterations: int = 100,
        rank: int | None = None,
        n_candidates: int = 4096,
        n_reference: int = 256,
        refit_growth: float = 1.0,
    ) -> None:
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        self.reducers = dict(reducers)
        self.modalities: tuple[str, ...] = tuple(self.reducers)
        self.target = self.modalities[0]
        self.policy = policy
        self.seed = int(seed)
        self.n_initial = int(n_initial)
        self.refit_every = int(refit_every)
        self.fit_iterations = int(fit_iterations)
        self.rank = int(rank or len(self.modalities))
        self.n_candidates = int(n_candidates)
        h, w = self.grid_shape
        rows, cols = np.divmod(np.arange(h * w), w)
        self.coords = np.stack([rows / max(h - 1, 1), cols / max(w - 1, 1)], axis=1)
        n_ref = min(int(n_reference), h * w)
        ref_rng = np.random.default_rng([self.seed, 0x5EF])
        self.reference = np.sort(ref_rng.choice(h * w, size=n_ref, replace=False))
        self._obs: dict[int, tuple[int, int, float]] = {}  # step -> (task, flat, value)
        self._state: MultiTaskState | None = None
        self._model: Any = None
        self._fitted_steps: tuple[int, ...] | None = None
        self._model_steps: tuple[int, ...] | None = None
        self.refit_growth = float(refit_growth)
        self.model_version = -1
        self.last_fit: FitRecord | None = None

    # ------------------------------------------------------------------ data
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Reduce each measurement of a known modality to its scalar and keep it."""
        w = self.grid_shape[1]
        for m in measurements:
            if m.modality in self.reducers:
                task = self.modalities.index(m.modality)
                flat = m.location.row * w + m.location.col
                self._obs[m.step] = (task, flat, self.reducers[m.modality](m.signal))

    @property
    def n_observations(self) -> int:
        """Measurements ingested (all modalities)."""
        return len(self._obs)

    def _rows(self, tasks: np.ndarray, flats: np.ndarray) -> np.ndarray:
        return np.column_stack([self.coords[flats], tasks.astype(np.float64)])

    def _fit_size(self) -> int:
        """Data size of the latest due fit: the largest schedule point ``<= n`` (0: none).

        Schedule: ``s_0 = max(n_initial, 2)``, ``s_{k+1} = max(s_k + refit_every,
        ceil(refit_growth * s_k))``. A function of the data size only, so a resumed campaign
        fits the same prefix with the same seed and gets the same model.
        """
        n, size = len(self._obs), max(self.n_initial, 2)
        if n < size:
            return 0
        while True:
            nxt = max(size + self.refit_every, int(np.ceil(self.refit_growth * size - 1e-9)))
            if nxt > n:
                return size
            size = nxt

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The fit's data: the first :meth:`_fit_size` observations in step order.

        ``X`` is ``n x 3`` (row, column in [0, 1], task index), ``y`` ``(n,)``.
        """
        return self._data(sorted(self._obs)[: self._fit_size()])

    def all_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Every observation (decisions condition on all of them), same layout."""
        return self._data(sorted(self._obs))

    def _data(self, steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if not steps:
            return np.empty((0, 3)), np.empty(0)
        rows = np.array([self._obs[s] for s in steps], dtype=np.float64)  # task, flat, value
        return self._rows(rows[:, 0], rows[:, 1].astype(np.int64)), rows[:, 2]

    # ------------------------------------------------------------------ fitting
    def fit_seed(self) -> int:
        """Seed of the next fit: a function of the campaign seed and the data size."""
        return int(np.random.SeedSequence([self.seed, 7919, self._fit_size()]).generate_state(1)[0])

    def fit_options(self) -> dict[str, Any]:
        """Options of the ``multitask`` fitter."""
        return {"n_tasks": len(self.modalities), "rank": self.rank}

    def needs_fit(self, step: int) -> bool:
        """Due when the schedule's latest fit (:meth:`_fit_size`) is not the loaded one."""
        del step
        size = self._fit_size()
        return size > 0 and tuple(sorted(self._obs)[:size]) != self._fitted_steps

    def load_fit(self, state: MultiTaskState, version: int, step: int | None = None) -> FitRecord:
        """Use a fitted state (e.g. from a Dask worker) as model ``version``."""
        self._state = state
        self._model = load_multitask(state)
        self._model_steps = tuple(sorted(self._obs))[: state.n_train]
        self._fitted_steps = self._model_steps
        self.model_version = int(version)
        self.last_fit = state.record(version, len(self._obs) if step is None else step)
        return self.last_fit

    def _ensure_model(self) -> bool:
        """Fit if due (when no loop fits for us); condition the model on every observation."""
        if self.needs_fit(0):
            X, y = self.training_data()
            state = fit_multitask(
                X, y, seed=self.fit_seed(), iterations=self.fit_iterations, **self.fit_options()
            )
            self.load_fit(state, self.model_version + 1)
        if self._state is None:
            return False
        steps = tuple(sorted(self._obs))
        if steps != self._model_steps:  # new data since the fit: same hyperparameters
            X, y = self.all_data()
            self._model = load_multitask(self._state, X, y)
            self._model_steps = steps
        return True

    def task_covariance(self) -> np.ndarray | None:
        """Learned task covariance ``B`` (``T x T``, modality order), or ``None`` before a fit."""
        return None if self._model is None else task_covariance(self._model)

    # ------------------------------------------------------------------ output
    def _posterior(self, task: int, flats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of task ``task`` at pixels ``flats`` in that task's units."""
        rows = self._rows(np.full(len(flats), task), np.asarray(flats, dtype=np.int64))
        with torch.no_grad():
            post = self._model.posterior(torch.as_tensor(rows))
            mean = post.mean.reshape(-1).numpy()
            std = post.variance.clamp_min(0).sqrt().reshape(-1).numpy()
        s = self._state
        return mean * s.y_std[task] + s.y_mean[task], std * s.y_std[task]

    def predict(self, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of ``modality``'s scalar over the grid, its units, ``(H, W)``."""
        h, w = self.grid_shape
        if not self._ensure_model():
            nan = np.full((h, w), np.nan)
            return nan, nan.copy()
        mean, std = self._posterior(self.modalities.index(modality), np.arange(h * w))
        return mean.reshape(h, w), std.reshape(h, w)

    def report(self) -> AgentReport:
        """The target modality's map, as a grid agent reports it."""
        mean, std = self.predict(self.target)
        w = self.grid_shape[1]
        target = [(s, f, v) for s, (t, f, v) in sorted(self._obs.items()) if t == 0]
        best = max(target, key=lambda o: o[2]) if target else None
        return AgentReport(
            mean=mean,
            std=std,
            model_version=self.model_version,
            n_observations=len(target),
            best_value=float(best[2]) if best else float("nan"),
            best_location=Location.from_flat(best[1], w) if best else None,
            last_fit=self.last_fit,
        )

    # ------------------------------------------------------------------ decisions
    def _taken(self, pending: Sequence[Proposal]) -> set[tuple[int, int]]:
        w = self.grid_shape[1]
        taken = {(t, f) for t, f, _ in self._obs.values()}
        for p in pending:
            if p.modality in self.reducers:
                taken.add((self.modalities.index(p.modality), p.location.row * w + p.location.col))
        return taken

    def propose(
        self,
        *,
        step: int,
        instrument: str,
        offered: Sequence[str],
        pending: Sequence[Proposal],
        cost: CostFunction,
    ) -> Proposal | None:
        """The (modality, location) for ``instrument`` by the agent's rule; see module docstring."""
        offered = [m for m in offered if m in self.reducers]
        taken = self._taken(pending)
        h, w = self.grid_shape
        cands = [(self.modalities.index(m), f) for m in offered for f in range(h * w)]
        cands = [c for c in cands if c not in taken]
        if not cands:
            return None
        rng = np.random.default_rng([self.seed, int(step), 0xC0])
        if len(self._obs) < self.n_initial or not self._ensure_model():
            task, flat = self._initial(cands, offered, step, rng)
            return self._proposal(step, instrument, task, flat, "initial", cost)
        if len(cands) > self.n_candidates:
            keep = np.sort(rng.choice(len(cands), size=self.n_candidates, replace=False))
            cands = [cands[i] for i in keep]
        tasks = np.array([t for t, _ in cands])
        flats = np.array([f for _, f in cands])
        rows = self._rows(tasks, flats)
        pend = [p for p in pending if p.modality in self.reducers]
        pend_rows = self._rows(
            np.array([self.modalities.index(p.modality) for p in pend], dtype=np.int64),
            np.array([p.location.row * w + p.location.col for p in pend], dtype=np.int64),
        )
        X, _ = self.all_data()
        noise = task_noise(self._model)
        ref = self._rows(np.zeros(len(self.reference), dtype=np.int64), self.reference)
        cov, var = posterior_terms(
            self._model.covar_module, noise, np.vstack([X, pend_rows]), rows, ref
        )
        costs = np.array(
            [cost(instrument, self.modalities[t], Location.from_flat(f, w)) for t, f in cands]
        )
        if self.policy == "gain_per_cost":
            score = knowledge_gain(cov, var, noise[tasks]) / np.maximum(costs, 1e-12)
        else:
            score = var
        best = int(np.argmax(score))
        return self._proposal(
            step,
            instrument,
            int(tasks[best]),
            int(flats[best]),
            self.policy,
            cost,
            score=float(score[best]),
        )

    def _initial(self, cands, offered, step, rng) -> tuple[int, int]:
        """A seeded random free location for the modality cycled by ``step``."""
        task = self.modalities.index(offered[step % len(offered)])
        mine = [c for c in cands if c[0] == task] or cands
        used = {f for t, f in cands} ^ set(range(self.grid_shape[0] * self.grid_shape[1]))
        fresh = [c for c in mine if c[1] not in used]  # space-filling: untouched spots first
        mine = fresh or mine
        return mine[int(rng.integers(len(mine)))]

    def _proposal(self, step, instrument, task, flat, policy, cost, score=float("nan")) -> Proposal:
        w = self.grid_shape[1]
        modality, loc = self.modalities[task], Location.from_flat(flat, w)
        mean = std = float("nan")
        if self._model is not None:
            means, stds = self._posterior(task, np.array([flat]))
            mean, std = float(means[0]), float(stds[0])
        return Proposal(
            step=step,
            instrument=instrument,
            modality=modality,
            location=loc,
            policy=policy,
            score=score,
            expected_cost=float(cost(instrument, modality, loc)),
            model_version=self.model_version,
            predicted_mean=mean,
            predicted_std=std,
        )
