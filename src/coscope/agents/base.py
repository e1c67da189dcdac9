"""What every grid agent shares: observations, the fit schedule, the loaded surrogate, reports.

Determinism for resume and replay: the agent keeps observations keyed by ``step`` and sorts
them by step, so the training data — and hence every fit and decision — depends on the set
of observations, not on the order in which they arrived. The fit schedule is also a function
of the data alone: the model serves the first ``n_fit`` observations in step order, with
``n_fit = n`` while ``n < refit_every`` and ``refit_every * (n // refit_every)`` after, so an
agent rebuilt from the trace fits exactly what the original fitted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from coscope.agents.protocols import AgentReport, Ask, ScalarTarget
from coscope.errors import ConfigError, ModelError
from coscope.models import DKLState, GPState, fit_model, load_latent_model, load_model, predict
from coscope.spaces import Box, PixelGrid, Space, layout_features
from coscope.types import FitRecord, Location, Measurement, Observation, Proposal


def finite_values(values: np.ndarray, step: int, what: str) -> np.ndarray:
    """``values`` (``(k,)``, several scalars of step ``step``'s signal), or ModelError naming
    ``what`` ("Objectives", "Constraints") when one is not finite."""
    if not np.isfinite(values).all():
        raise ModelError(
            f"{what} of step {step} are not all finite ({values.tolist()}); fix the "
            "scalarizers or drop that measurement before ingesting."
        )
    return values


class ScheduledAgent:
    """What every single-target GP agent shares, on a finite space or a box: its target,
    its observations keyed by step, and the fit schedule (module docstring).

    Subclasses set the attributes listed below in ``__init__`` (:meth:`_start`) and
    implement :meth:`training_data` and :meth:`ingest`.
    """

    policy_name = "base"
    model_kind = "gp"
    """Registered model kind (:func:`coscope.models.fitting.fit_model`) this agent's fits use."""
    _target: ScalarTarget | None
    _obs: dict[int, Observation]
    seed: int
    refit_every: int
    fit_iterations: int

    def _start(
        self, seed: int, refit_every: int, fit_iterations: int, target: ScalarTarget | None
    ) -> None:
        """Set the shared state (no model yet)."""
        if refit_every < 1:
            raise ConfigError(f"refit_every must be >= 1; got {refit_every!r}.")
        self.seed = int(seed)
        self._target = target
        self.refit_every = int(refit_every)
        self.fit_iterations = int(fit_iterations)
        self._obs = {}
        self._state: GPState | DKLState | None = None
        self._model: Any = None
        self._fit_steps: tuple[int, ...] | None = None
        self.model_version = -1
        self.last_fit: FitRecord | None = None

    def fit_options(self) -> dict[str, Any]:
        """Keyword options for :func:`coscope.models.fitting.fit_model` (none for the GP)."""
        return {}

    @property
    def scalar_target(self) -> ScalarTarget:
        """What this agent learns (ConfigError when it was built without one)."""
        if self._target is None:
            raise ConfigError(
                f"{type(self).__name__} was built without a scalar_target; build it with "
                "coscope.infra.compose.agent_from_spec or pass scalar_target=."
            )
        return self._target

    @property
    def modalities(self) -> tuple[str, ...]:
        """The target modality, the only one it learns from and proposes."""
        return (self.scalar_target.modality,)

    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Scalarize the measurements of the target modality and :meth:`ingest` them."""
        target = self.scalar_target
        self.ingest([target.observe(m) for m in measurements if m.modality == target.modality])

    def ingest(self, observations: Sequence[Observation]) -> None:
        """Add observations (subclasses check where they lie)."""
        raise NotImplementedError

    def _keep(self, ob: Observation) -> None:
        """Store one observation; ModelError for a non-finite value or a changed step."""
        value = float(ob.value)
        if not np.isfinite(value):
            raise ModelError(
                f"Observation of step {ob.step} at {ob.location} has non-finite value "
                f"{value}; fix the scalarizer or drop that measurement before ingesting."
            )
        old = self._obs.get(ob.step)
        if old is not None and old != ob:
            raise ModelError(
                f"Step {ob.step} was already ingested with different content ({old}); "
                "each decision step must have one observation."
            )
        self._obs[ob.step] = ob

    @property
    def observations(self) -> tuple[Observation, ...]:
        """All observations, sorted by step."""
        return tuple(self._obs[k] for k in sorted(self._obs))

    @property
    def n_observations(self) -> int:
        """Number of observations ingested."""
        return len(self._obs)

    def _report(self, mean: np.ndarray, std: np.ndarray) -> AgentReport:
        """The report of maps ``mean``, ``std`` and the best observation (earliest on ties)."""
        obs = self.observations
        best = max(obs, key=lambda o: o.value) if obs else None  # first max = earliest step
        return AgentReport(
            mean=mean,
            std=std,
            model_version=self.model_version,
            n_observations=len(obs),
            best_value=float(best.value) if best else float("nan"),
            best_location=best.location if best else None,
            last_fit=self.last_fit,
        )

    # ------------------------------------------------------------------ fitting
    def _n_fit(self) -> int:
        n = self.n_observations
        return n if n < self.refit_every else self.refit_every * (n // self.refit_every)

    def _fit_subset(self) -> tuple[Observation, ...]:
        return self.observations[: self._n_fit()]

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """What the next fit should train on: ``X`` (``n x d``) and ``y`` (``(n,)``)."""
        raise NotImplementedError

    def fit_seed(self) -> int:
        """Seed for the next fit, a function of the campaign seed and the data size."""
        return int(np.random.SeedSequence([self.seed, 104729, self._n_fit()]).generate_state(1)[0])

    def needs_fit(self, step: int) -> bool:
        """Whether the loaded model does not serve the current data (see module docstring).

        Args:
            step: The next decision step (the schedule itself depends only on the data).
        """
        del step
        subset = self._fit_subset()
        return bool(subset) and tuple(o.step for o in subset) != self._fit_steps

    def load_fit(self, state: GPState, version: int, step: int | None = None) -> FitRecord:
        """Use a fitted state (e.g. from a Dask worker) as model ``version``; no refit."""
        n = state.n_train
        X, y = self.training_data()
        subset = self._fit_subset()
        same = n == len(subset) and np.array_equal(X, state.X) and np.array_equal(y, state.y)
        self._fit_steps = tuple(o.step for o in subset) if same else None
        self._state = state
        self._model = load_model(state)
        self.model_version = int(version)
        self.last_fit = state.record(version, self.n_observations if step is None else step)
        return self.last_fit

    def fit(self, step: int) -> FitRecord:
        """Fit locally on :meth:`training_data` and load the result as the next version."""
        X, y = self.training_data()
        if X.shape[0] == 0:
            raise ModelError("Cannot fit a surrogate before any observation was ingested.")
        state = fit_model(
            self.model_kind, X, y, self.fit_seed(), self.fit_iterations, **self.fit_options()
        )
        return self.load_fit(state, self.model_version + 1, step)

    def _ensure_model(self, step: int) -> bool:
        """Fit if due; True when a model is available."""
        if self.needs_fit(step):
            self.fit(step)
        return self._model is not None

    # ------------------------------------------------------------------ retrace
    @property
    def surrogate(self) -> Any:
        """The loaded surrogate (a botorch model), or None before the first fit."""
        return self._model

    def final_surrogate(self, step: int) -> tuple[GPState | DKLState, list[int]] | None:
        """The surrogate serving the data now (fitted if due) and the steps of its training
        rows, in row order; None before any observation."""
        if self.n_observations == 0 or not self._ensure_model(step):
            return None
        if self._state is None:
            return None
        return self._state, [o.step for o in self._fit_subset()]

    def condition_on(self, state: GPState | DKLState) -> None:
        """Predict and score with ``state`` from now on (retrace: the final fit's
        hyperparameters conditioned on the data of an earlier step)."""
        model = load_latent_model(state) if isinstance(state, DKLState) else load_model(state)
        self._state, self._model = state, model


class GridAgent(ScheduledAgent):
    """Base of the agents over a finite space; subclasses implement ``suggest``.

    Everything is indexed by the space's layout (``H x W``, flat row-major): a pixel grid
    (``(H, W)`` given as a tuple means :class:`~coscope.spaces.PixelGrid`), a masked grid
    (cells off the mask are never proposed, NaN in the maps) or a table (``N x 1``).

    An :class:`~coscope.agents.protocols.Agent` once built with its ``scalar_target``: it is
    told measurements (those of the target modality become observations) and asked for one
    proposal at a time (:meth:`propose`, via :meth:`suggest`).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        seed: Campaign seed; all randomness derives from it and the step.
        n_initial: Observations plus pending points before the policy takes over.
        seed_points: Locations proposed first, in order.
        refit_every: Fit schedule granularity (see module docstring).
        fit_iterations: Iteration cap passed to :func:`coscope.models.fit_model`.
        batch_size: Candidates per prediction batch.
        scalar_target: The target modality and its ``signal -> float`` (needed by
            :meth:`ingest_measurements` and :meth:`propose`, not by :meth:`ingest`).
    """

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        seed: int = 0,
        n_initial: int = 5,
        seed_points: Sequence[Location] = (),
        refit_every: int = 1,
        fit_iterations: int = 100,
        batch_size: int = 4096,
        scalar_target: ScalarTarget | None = None,
    ) -> None:
        if isinstance(grid_shape, tuple | list):
            if len(grid_shape) != 2 or min(int(v) for v in grid_shape) < 1:
                raise ConfigError(
                    f"grid_shape must be two positive ints (H, W); got {grid_shape!r}."
                )
            grid_shape = PixelGrid((int(grid_shape[0]), int(grid_shape[1])))
        space: Space = grid_shape
        if isinstance(space, Box):
            raise ConfigError(
                "a box has no finite candidates to score: its points are proposed by "
                "coscope.agents.BoxAgent (policies ei, ucb, maxvar, random)."
            )
        H, W = space.layout
        self._start(seed, refit_every, fit_iterations, scalar_target)
        for loc in seed_points:
            space.check(loc, "seed point")
        self.space = space
        self.grid_shape = (H, W)
        self.n_initial = int(n_initial)
        self.seed_points = tuple(seed_points)
        self.batch_size = int(batch_size)
        self.candidates = layout_features(space)
        """Model inputs of every layout cell, ``(H*W) x d``, row-major: the space's features
        (normalised pixel coordinates for a grid; zeros at cells off a mask, never used)."""
        self.outside = ~space.allowed
        """``(H*W,)`` cells that are not candidates of the space: never proposed."""
        self.blocked = np.zeros(H * W, dtype=bool)
        """``(H*W,)`` pixels a steering intervention excluded: never proposed."""

    # ------------------------------------------------------------------ the Agent contract
    def propose(self, ask: Ask) -> Proposal | None:
        """One proposal of :meth:`suggest` for ``ask``, priced by ``ask.price`` where it lands.

        Every pending location (of any instrument) is a pending point of the policy.
        """
        modality = self.scalar_target.modality
        if modality not in ask.offered:
            return None
        proposals = self.suggest(
            1,
            step=ask.step,
            instrument=ask.instrument,
            modality=modality,
            pending=[p.location for p in ask.pending],
        )
        if not proposals:
            return None
        chosen = proposals[0]
        price = float(ask.price(ask.instrument, modality, chosen.location))
        return replace(chosen, expected_cost=price)

    def suggest(
        self,
        n: int,
        *,
        step: int,
        instrument: str,
        modality: str,
        pending: Sequence[Location] = (),
        expected_cost: float = 0.0,
    ) -> list[Proposal]:
        """Up to ``n`` proposals for steps ``step, step + 1, ...`` (subclasses decide how)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ data
    def ingest(self, observations: Sequence[Observation]) -> None:
        """Add observations; re-ingesting the same observation (same step) is a no-op.

        Raises:
            ModelError: Non-finite value, location outside the grid, or a step already
                ingested with different content.
        """
        H, W = self.grid_shape
        for ob in observations:
            if not self.space.contains(ob.location):
                raise ModelError(
                    f"Observation of step {ob.step} at {ob.location} lies outside the "
                    f"{H} x {W} {self.space.kind.replace('_', ' ')}; check the instrument's "
                    "sample and the spec's sample.mask."
                )
            self._keep(ob)

    def _flat(self, loc: Location) -> int:
        return loc.flat(self.grid_shape[1])

    def _excluded(self, pending: Sequence[Location]) -> np.ndarray:
        """``(H*W,)`` mask of measured, pending, blocked (by steering) or outside cells."""
        mask = self.blocked | self.outside
        for ob in self._obs.values():
            mask[self._flat(ob.location)] = True
        for loc in pending:
            mask[self._flat(loc)] = True
        return mask

    # ------------------------------------------------------------------ fitting
    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """What the next fit should train on: ``X`` (``n x d``) and ``y`` (``(n,)``)."""
        obs = self._fit_subset()
        X = self.candidates[[self._flat(o.location) for o in obs]]
        X = X.reshape(-1, self.candidates.shape[1])
        y = np.array([o.value for o in obs], dtype=np.float64)
        return X, y

    # ------------------------------------------------------------------ output
    def report(self) -> AgentReport:
        """Mean and std maps over the whole grid (fits first if due), best observation."""
        H, W = self.grid_shape
        if self._ensure_model(self.n_observations):
            mean, std = self.predict_candidates()
            mean, std = mean.reshape(H, W), std.reshape(H, W)
            if self.outside.any():
                mean, std = mean.copy(), std.copy()
                mean.flat[self.outside] = np.nan
                std.flat[self.outside] = np.nan
        else:
            mean = std = np.full((H, W), np.nan)
        return self._report(mean, std)

    def predict_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of the loaded surrogate at every candidate, ``(H*W,)`` each
        (ModelError without one)."""
        if self._model is None:
            raise ModelError("no surrogate is loaded: fit or condition the agent first.")
        return predict(self._model, self.candidates, batch_size=self.batch_size)

    def _seed_choices(self, n: int, excluded: np.ndarray) -> list[int]:
        """Seed points not yet measured or pending, in order; marks them excluded."""
        out: list[int] = []
        for loc in self.seed_points:
            idx = self._flat(loc)
            if len(out) < n and not excluded[idx]:
                out.append(idx)
                excluded[idx] = True
        return out

    def _proposal(
        self,
        idx: int,
        *,
        step: int,
        instrument: str,
        modality: str,
        policy: str,
        expected_cost: float,
        score: float = float("nan"),
        mean: float = float("nan"),
        std: float = float("nan"),
        model_version: int = -1,
    ) -> Proposal:
        return Proposal(
            step=step,
            instrument=instrument,
            modality=modality,
            location=Location.from_flat(idx, self.grid_shape[1]),
            policy=policy,
            score=float(score),
            expected_cost=float(expected_cost),
            model_version=int(model_version),
            predicted_mean=float(mean),
            predicted_std=float(std),
            t_decided=time.time(),
        )

    def _candidates_tensor(self) -> torch.Tensor:
        return torch.as_tensor(self.candidates, dtype=torch.float64)
