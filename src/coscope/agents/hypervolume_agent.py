"""Multi-objective agent over a finite space: qLogNEHVI on one exact GP per objective.

Every objective (a scalarizer of one modality, maximised or minimised) gets its own
:func:`~coscope.models.fit_gp` fit on the same locations; botorch's
``qLogNoisyExpectedHypervolumeImprovement`` scores every candidate of the space on the
``ModelListGP`` of them, minimised objectives negated by a weighted multi-output objective,
with the reference point of :meth:`Objectives.ref_point` (given, or the observed minima minus
10 % of the observed range). Pending points enter as ``X_pending``. The quasi-MC sampler is
seeded from ``(seed, step)``, the fits from the campaign seed and the data size, so the same
seed gives the same decisions.

The agent fits in-process (all objectives at once) and hands the fit records of its first
objective over (:class:`~coscope.agents.protocols.HandsOverFits`); its maps
(:meth:`report`) are those of the first objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition.multi_objective.logei import (
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import WeightedMCMultiOutputObjective
from botorch.models import ModelListGP
from botorch.sampling import SobolQMCNormalSampler

from coscope.agents.acquisition import evaluate
from coscope.agents.agent import SelfFittingAgent
from coscope.agents.base import GridAgent, finite_values
from coscope.agents.protocols import Objectives, ScalarTarget
from coscope.errors import ConfigError, ModelError
from coscope.models import GPState, fit_gp, load_model
from coscope.spaces import Space
from coscope.types import FitRecord, Measurement

MC_BATCH = 256
"""Candidates per acquisition batch (memory grows with MC samples x baseline points)."""


class HypervolumeAgent(SelfFittingAgent):
    """qLogNEHVI over the candidates of a space (policy ``qlognehvi``).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        objectives: What it optimises (two or more scalars of one modality).
        policy_params: ``{"mc_samples": 128}`` (quasi-MC samples of the posterior).
        **kwargs: See :class:`~coscope.agents.base.GridAgent` (``seed``, ``n_initial``,
            ``seed_points``, ``refit_every``, ``fit_iterations``, ``batch_size``);
            ``scalar_target`` is the first objective and may not be given.
    """

    policy_name = "qlognehvi"
    param_names: tuple[str, ...] = ("mc_samples",)

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        objectives: Objectives,
        policy_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = self.policy_name
        if len(objectives.values) < 2:
            raise ConfigError(f"{name} needs at least two objectives; list them in objectives.")
        params = dict(policy_params or {})
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            takes = ", ".join(self.param_names)
            raise ConfigError(f"policy '{name}' takes only {takes}; remove {unknown}.")
        first = ScalarTarget(objectives.modality, objectives.values[0])
        # GPAgent's own __init__ validates a single-objective policy name: skip to the base
        GridAgent.__init__(self, grid_shape, scalar_target=first, **kwargs)
        self.objectives = objectives
        self.policy_params = params
        self.mc_samples = int(params.get("mc_samples", 128))
        self._values: dict[int, np.ndarray] = {}
        self._models: list[Any] = []
        self._handed: list[FitRecord] = []

    # ------------------------------------------------------------------ data
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Every objective of the measurements of the objectives' modality."""
        mine = [m for m in measurements if m.modality == self.objectives.modality]
        for m in mine:
            self._values[m.step] = finite_values(self.objectives.of(m.signal), m.step, "Objectives")
        super().ingest_measurements(mine)

    def objective_values(self) -> np.ndarray:
        """Objective values of the fitted subset, ``n x m``, objective units, step order."""
        m = len(self.objectives.values)
        rows = [self._values[o.step] for o in self._fit_subset()]
        return np.array(rows, dtype=np.float64).reshape(-1, m)

    # ------------------------------------------------------------------ fitting
    def fit(self, step: int) -> FitRecord:
        """Fit one GP per objective on the fitted subset (seeded) and load them."""
        X, _ = self.training_data()
        if X.shape[0] == 0:
            raise ModelError("Cannot fit a surrogate before any observation was ingested.")
        Y = self.objective_values()
        seed = self.fit_seed()
        states: list[GPState] = [
            fit_gp(X, Y[:, j], seed=seed + j, iterations=self.fit_iterations)
            for j in range(Y.shape[1])
        ]
        self._models = [load_model(s) for s in states]
        self._state, self._model = states[0], self._models[0]
        self._fit_steps = tuple(o.step for o in self._fit_subset())
        self.model_version += 1
        self.last_fit = states[0].record(self.model_version, step)
        self._handed.append(self.last_fit)
        return self.last_fit

    # ------------------------------------------------------------------ scoring
    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """log-NEHVI of every candidate, ``(H*W,)``, with ``believed`` pixels pending."""
        if not self._models:
            raise ConfigError("No model is loaded; call fit() first.")
        X, _ = self.training_data()
        Y = self.objective_values()
        ref = self.objectives.ref_point(Y)
        pending = self.candidates[list(believed)] if len(believed) else None
        seed = int(np.random.SeedSequence([self.seed, 7919, len(X)]).generate_state(1)[0])
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples]), seed=seed)
        with torch.random.fork_rng():  # baseline pruning draws its own samples: seed them
            torch.manual_seed(seed)
            acqf = self._acquisition(X, ref, pending, sampler)
        batch = min(self.batch_size, MC_BATCH)
        return evaluate(acqf, self._candidates_tensor(), batch_size=batch).numpy()

    def _acquisition(
        self,
        X: np.ndarray,
        ref: np.ndarray,
        pending: np.ndarray | None,
        sampler: SobolQMCNormalSampler,
    ) -> qLogNoisyExpectedHypervolumeImprovement:
        """qLogNEHVI on the objectives' GPs: ``X`` ``n x d`` measured inputs, ``ref`` ``(m,)``
        (maximisation convention), ``pending`` ``k x d`` or ``None``."""
        return qLogNoisyExpectedHypervolumeImprovement(
            model=ModelListGP(*self._models),
            ref_point=torch.as_tensor(ref, dtype=torch.float64).tolist(),
            X_baseline=torch.as_tensor(X, dtype=torch.float64),
            sampler=sampler,
            objective=WeightedMCMultiOutputObjective(
                torch.as_tensor(self.objectives.signs, dtype=torch.float64)
            ),
            X_pending=None if pending is None else torch.as_tensor(pending, dtype=torch.float64),
            prune_baseline=True,
            cache_root=False,
        )
