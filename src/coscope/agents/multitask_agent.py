"""The co-orchestrating agent: a multi-task GP over every modality, (modality, location) chosen.

An :class:`~coscope.agents.protocols.Agent` that chooses the modality. Each modality's signal
is reduced to one scalar by its scalarizer (the campaign's target scalarizer for the target
modality, the spec's ``auxiliary`` scalarizers for the others); the scalars of all modalities, each
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
from typing import Any

import numpy as np

from coscope import catalog
from coscope.agents.fit_schedule import BackgroundFits, schedule
from coscope.agents.knowledge_gain import IcmKernel, knowledge_gain, posterior_mean, posterior_terms
from coscope.agents.protocols import AgentReport, Ask, Reducer
from coscope.instruments.costs import STAGE_FROM
from coscope.models.multitask import (
    MultiTaskState,
    fit_multitask,
    icm_kernel,
    load_multitask,
)
from coscope.types import FitRecord, Location, Measurement, Proposal

CHOOSER_POLICIES = catalog.CHOOSER_POLICIES
"""Policy names served by :class:`MultiTaskAgent` (declared in :mod:`coscope.catalog`)."""


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
        background_fit: Fit in a background thread, lagged one schedule point, so that
            no instrument waits on the model (:mod:`coscope.agents.fit_schedule`).
        features: Extra inputs per pixel, ``(H, W)`` or ``(H, W, p)`` (e.g. the sample's
            structure image: the library's nominal composition), scaled to [0, 1].
        refit_growth: Refit when the data grew by this factor too (1.5 from 6: fits at 6,
            9, 14, 21 … points; :mod:`~coscope.agents.fit_schedule`); between fits the
            model is conditioned on all data with the last hyperparameters, so decisions
            always use every point.
        boundaries: Learned boundary features ``K`` of the kernel (0: plain RBF;
            :mod:`coscope.models.boundary_warp`), shared by all modalities.
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
        features: np.ndarray | None = None,
        background_fit: bool = False,
        boundaries: int = 0,
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
        self.boundaries = int(boundaries)
        self.n_candidates = int(n_candidates)
        h, w = self.grid_shape
        rows, cols = np.divmod(np.arange(h * w), w)
        self.coords = np.stack([rows / max(h - 1, 1), cols / max(w - 1, 1)], axis=1)
        if features is not None:  # extra inputs per pixel (e.g. the known composition)
            f = np.asarray(features, dtype=np.float64).reshape(h * w, -1)
            span = np.ptp(f, axis=0)
            f = (f - f.min(axis=0)) / np.where(span > 0, span, 1.0)
            self.coords = np.column_stack([self.coords, f])
        n_ref = min(int(n_reference), h * w)
        ref_rng = np.random.default_rng([self.seed, 0x5EF])
        self.reference = np.sort(ref_rng.choice(h * w, size=n_ref, replace=False))
        self._obs: dict[int, tuple[int, int, float]] = {}  # step -> (task, flat, value)
        self._stage: dict[str, tuple[int, Location]] = {}  # instrument -> latest (step, loc)
        self._state: MultiTaskState | None = None
        self._kernel: IcmKernel | None = None
        self._fitted_steps: tuple[int, ...] | None = None
        self.refit_growth = float(refit_growth)
        self._background = BackgroundFits(self._fit_prefix) if background_fit else None
        self.background_fits: list[FitRecord] = []
        self._own_fits: list[FitRecord] = []  # fits made here, not yet handed to the loop
        """Fits made in the background (the loop records only the fits it runs itself)."""
        self.model_version = -1
        self.last_fit: FitRecord | None = None

    # ------------------------------------------------------------------ data
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Reduce each measurement of a known modality to its scalar and keep it."""
        w = self.grid_shape[1]
        for m in measurements:
            self._note_stage(m.instrument, m.step, m.location)
            if m.modality in self.reducers:
                task = self.modalities.index(m.modality)
                flat = m.location.row * w + m.location.col
                self._obs[m.step] = (task, flat, self.reducers[m.modality](m.signal))

    def _note_stage(self, instrument: str, step: int, location: Location) -> None:
        if step >= self._stage.get(instrument, (-1, location))[0]:
            self._stage[instrument] = (step, location)

    def _stage_params(self, instrument: str, pending: Sequence[Proposal]) -> dict[str, Any]:
        """``{"stage_from": [row, col]}``: the instrument's latest decision (measured or in
        flight), where its stage will be; empty before its first decision."""
        for p in pending:
            self._note_stage(p.instrument, p.step, p.location)
        if instrument not in self._stage:
            return {}
        loc = self._stage[instrument][1]
        return {STAGE_FROM: [loc.row, loc.col]}

    @property
    def n_observations(self) -> int:
        """Measurements ingested (all modalities)."""
        return len(self._obs)

    def _rows(self, tasks: np.ndarray, flats: np.ndarray) -> np.ndarray:
        return np.column_stack([self.coords[flats], tasks.astype(np.float64)])

    def _fit_size(self) -> int:
        """Data size of the latest due fit (:func:`~coscope.agents.fit_schedule.schedule`)."""
        points = schedule(len(self._obs), self.n_initial, self.refit_every, self.refit_growth)
        return points[-1] if points else 0

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The fit's data: the first :meth:`_fit_size` observations in step order.

        ``X`` is ``n x (d + 1)`` (row, column in [0, 1], any features, task index), ``y`` ``(n,)``.
        """
        return self._data(sorted(self._obs)[: self._fit_size()])

    def all_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Every observation (decisions condition on all of them), same layout."""
        return self._data(sorted(self._obs))

    def _data(self, steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if not steps:
            return np.empty((0, self.coords.shape[1] + 1)), np.empty(0)
        rows = np.array([self._obs[s] for s in steps], dtype=np.float64)  # task, flat, value
        return self._rows(rows[:, 0], rows[:, 1].astype(np.int64)), rows[:, 2]

    # ------------------------------------------------------------------ fitting
    def fit_seed(self) -> int:
        """Seed of the next fit: a function of the campaign seed and the data size."""
        return self._seed_for(self._fit_size())

    def _seed_for(self, size: int) -> int:
        return int(np.random.SeedSequence([self.seed, 7919, size]).generate_state(1)[0])

    def fit_options(self) -> dict[str, Any]:
        """Options of the ``multitask`` fitter."""
        return {"n_tasks": len(self.modalities), "rank": self.rank, "boundaries": self.boundaries}

    def needs_fit(self, step: int) -> bool:
        """Due when the schedule's latest fit is not the loaded one (never when it fits in
        the background: then the loop leaves fitting to the agent)."""
        del step
        if self._background is not None:
            return False
        size = self._fit_size()
        return size > 0 and tuple(sorted(self._obs)[:size]) != self._fitted_steps

    def load_fit(self, state: MultiTaskState, version: int, step: int | None = None) -> FitRecord:
        """Use a fitted state (e.g. from a Dask worker) as model ``version``."""
        self._state = state
        self._kernel = icm_kernel(load_multitask(state))
        self._fitted_steps = tuple(sorted(self._obs))[: state.n_train]
        self.model_version = int(version)
        self.last_fit = state.record(version, len(self._obs) if step is None else step)
        return self.last_fit

    def _ensure_model(self) -> bool:
        """Fit if due (when no loop fits for us); True once a fitted kernel is loaded."""
        if self._background is not None:
            self._use_background_fit()
        elif self.needs_fit(0):
            self.load_fit(self._fit_prefix(self._fit_size()), self.model_version + 1)
            self._own_fits.append(self.last_fit)
        return self._state is not None

    def take_fits(self) -> list[FitRecord]:
        """Fits this agent made itself (background or in-process) since the last call.

        The loop records them in the trace and MLflow like the fits it runs itself.
        """
        taken, self._own_fits = self._own_fits, []
        return taken

    def _fit_prefix(self, size: int) -> MultiTaskState:
        X, y = self._data(sorted(self._obs)[:size])
        return fit_multitask(
            X, y, seed=self._seed_for(size), iterations=self.fit_iterations, **self.fit_options()
        )

    def _use_background_fit(self) -> None:
        """Load the lagged fit and start the newest (see :mod:`coscope.agents.fit_schedule`)."""
        points = schedule(len(self._obs), self.n_initial, self.refit_every, self.refit_growth)
        if len(points) < 2:  # the first fit runs while the initial design continues
            if points:
                self._background.start(points[0])
            return
        use = points[-2]
        if self._state is None or self._state.n_train != use:
            state = self._background.result(use)
            self.load_fit(state, self.model_version + 1, use)
            self.background_fits.append(self.last_fit)
            self._own_fits.append(self.last_fit)
        self._background.start(points[-1])

    def close(self) -> None:
        """Stop the background fitting thread (if any); the agent stays usable."""
        if self._background is not None:
            self._background.close()

    def task_covariance(self) -> np.ndarray | None:
        """Learned task covariance ``B`` (``T x T``, modality order), or ``None`` before a fit."""
        return None if self._kernel is None else self._kernel.task_cov.copy()

    def boundary_map(self) -> np.ndarray | None:
        """Learned boundary features ``s_k`` over the grid, ``(H, W, K)`` in 0..1, or ``None``
        without a fitted boundary kernel (:mod:`coscope.models.boundary_warp`)."""
        if self._kernel is None or len(self._kernel.offset) == 0:
            return None
        d = self.coords.shape[1]
        s = self._kernel.warp(self.coords)[:, d:]
        return s.reshape(*self.grid_shape, -1)

    # ------------------------------------------------------------------ output
    def _posterior(self, task: int, flats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of task ``task`` at pixels ``flats`` in that task's units, given all
        data (the fitted hyperparameters, the fit's per-task standardisation)."""
        s = self._state
        X, y = self.all_data()
        tasks = X[:, -1].astype(np.int64)
        points = self._rows(np.full(len(flats), task), np.asarray(flats, dtype=np.int64))
        mean, var = posterior_mean(self._kernel, X, (y - s.y_mean[tasks]) / s.y_std[tasks], points)
        return mean * s.y_std[task] + s.y_mean[task], np.sqrt(var) * s.y_std[task]

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

    def propose(self, ask: Ask) -> Proposal | None:
        """The (modality, location) for ``ask.instrument`` by the agent's rule (see above)."""
        step, instrument, pending, cost = ask.step, ask.instrument, ask.pending, ask.price
        offered = [m for m in ask.offered if m in self.reducers]
        taken = self._taken(pending)
        params = self._stage_params(instrument, pending)
        h, w = self.grid_shape
        cands = [(self.modalities.index(m), f) for m in offered for f in range(h * w)]
        cands = [c for c in cands if c not in taken]
        if not cands:
            return None
        rng = np.random.default_rng([self.seed, int(step), 0xC0])
        if len(self._obs) < self.n_initial or not self._ensure_model():
            task, flat = self._initial(cands, offered, taken, step, rng)
            return self._proposal(step, instrument, task, flat, "initial", cost, params)
        if len(cands) > self.n_candidates:
            keep = np.sort(rng.choice(len(cands), size=self.n_candidates, replace=False))
            cands = [cands[i] for i in keep]
        tasks = np.array([t for t, _ in cands])
        flats = np.array([f for _, f in cands])
        pend = [p for p in pending if p.modality in self.reducers]
        pend_tasks = np.array([self.modalities.index(p.modality) for p in pend], dtype=np.int64)
        pend_flats = np.array([p.location.row * w + p.location.col for p in pend], dtype=np.int64)
        costs = np.array(
            [
                cost(instrument, self.modalities[t], Location.from_flat(f, w), params)
                for t, f in cands
            ]
        )
        score = self._scores(tasks, flats, pend_tasks, pend_flats, costs)
        best = int(np.argmax(score))
        return self._proposal(
            step,
            instrument,
            int(tasks[best]),
            int(flats[best]),
            self.policy,
            cost,
            params,
            score=float(score[best]),
        )

    def _scores(
        self,
        tasks: np.ndarray,
        flats: np.ndarray,
        pend_tasks: np.ndarray,
        pend_flats: np.ndarray,
        costs: np.ndarray,
    ) -> np.ndarray:
        """The policy's score of each candidate (modality index ``tasks``, pixel ``flats``),
        pending (modality, pixel) pairs entering as fantasies; ``(c,)``."""
        rows = self._rows(tasks, flats)
        X, _ = self.all_data()
        ref = self._rows(np.zeros(len(self.reference), dtype=np.int64), self.reference)
        conditioning = np.vstack([X, self._rows(pend_tasks, pend_flats)])
        cov, var = posterior_terms(self._kernel, conditioning, rows, ref)
        if self.policy == "gain_per_cost":
            gain = knowledge_gain(cov, var, self._kernel.noise[tasks])
            return gain / np.maximum(costs, 1e-12)
        return var

    def _initial(self, cands, offered, taken, step, rng) -> tuple[int, int]:
        """A seeded random free location for the modality cycled by ``step``; locations
        without any measurement or pending proposal (of any modality) first."""
        task = self.modalities.index(offered[step % len(offered)])
        mine = [c for c in cands if c[0] == task] or cands
        used = {f for _, f in taken}
        fresh = [c for c in mine if c[1] not in used]  # space-filling: untouched spots first
        mine = fresh or mine
        return mine[int(rng.integers(len(mine)))]

    def _proposal(
        self, step, instrument, task, flat, policy, cost, params, score=float("nan")
    ) -> Proposal:
        w = self.grid_shape[1]
        modality, loc = self.modalities[task], Location.from_flat(flat, w)
        mean = std = float("nan")
        if self._kernel is not None:
            means, stds = self._posterior(task, np.array([flat]))
            mean, std = float(means[0]), float(stds[0])
        return Proposal(
            step=step,
            instrument=instrument,
            modality=modality,
            location=loc,
            policy=policy,
            score=score,
            expected_cost=float(cost(instrument, modality, loc, params)),
            model_version=self.model_version,
            predicted_mean=mean,
            predicted_std=std,
            params=params,
        )
