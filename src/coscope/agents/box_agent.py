"""The agent over a continuous box: a GP on ``[0, 1]^d``, acquisition maximised by
botorch's ``optimize_acqf`` (``docs/spaces.md``, "A continuous box").

Order of proposals: the box's seed points not yet decided, then uniform random points until
observations + pending reach ``n_initial``, then the policy's acquisition (EI, UCB,
max-variance … built on the fitted GP by :func:`~coscope.agents.acquisition.
build_acquisition`) maximised over the unit cube with ``optimize_acqf`` (``num_restarts``
L-BFGS-B starts from the best of ``raw_samples`` Sobol points). Points in flight enter as
kriging-believer fantasies. Policy ``random`` draws uniform points throughout (the
baseline; its report still fits the GP).

Determinism: step ``k``'s random points come from ``default_rng([seed, k])`` and the
optimiser's raw samples from a seed of ``(seed, k)`` under a forked torch generator; fits
follow the shared schedule (:mod:`coscope.agents.base`). The point of step ``k`` lives at
``Location(k, 0)`` and in its request params ``{"x": [...]}``; the agent learns the points
of stored decisions through :meth:`remember_params` (resume, replay), its own when it
proposes them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from botorch.optim import optimize_acqf

from coscope.agents.acquisition import believing, build_acquisition, validate_policy
from coscope.agents.base import ScheduledAgent
from coscope.agents.protocols import AgentReport, Ask, ScalarTarget
from coscope.errors import ConfigError, ModelError
from coscope.models import predict
from coscope.spaces import Box
from coscope.types import Observation, Proposal

RANDOM = "random"
"""The baseline policy: uniform points in the box."""


class BoxAgent(ScheduledAgent):
    """GP agent over a :class:`~coscope.spaces.Box`.

    Args:
        box: The box (dimensions, bounds, slots).
        policy: A registered acquisition policy (``ei``, ``ucb``, ``maxvar`` …) or
            ``"random"``.
        policy_params: The policy's options (e.g. ``{"beta": 4.0}``).
        seed: Campaign seed.
        n_initial: Observations plus pending points before the policy takes over.
        seed_points: Points ``(d,)`` in the box's units, proposed first, in order.
        refit_every: Fit schedule granularity.
        fit_iterations: Iteration cap of a GP fit.
        scalar_target: The target modality and its ``signal -> float``.
        num_restarts: L-BFGS-B starts of ``optimize_acqf``.
        raw_samples: Sobol points scored to choose the starts.

    Raises:
        ConfigError: Unknown policy or option; SpaceError: a seed point outside the box.
    """

    def __init__(
        self,
        box: Box,
        *,
        policy: str = "ei",
        policy_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        n_initial: int = 5,
        seed_points: Sequence[Sequence[float] | np.ndarray] = (),
        refit_every: int = 1,
        fit_iterations: int = 100,
        scalar_target: ScalarTarget | None = None,
        num_restarts: int = 8,
        raw_samples: int = 256,
    ) -> None:
        if policy != RANDOM:
            validate_policy(policy, policy_params)
        elif policy_params:
            raise ConfigError(f"Policy {policy!r} takes no policy_params; remove them.")
        self._start(seed, refit_every, fit_iterations, scalar_target)
        self.space = box
        self.box = box
        self.grid_shape = box.layout
        self.policy_name = policy
        self.policy_params = dict(policy_params or {})
        self.n_initial = int(n_initial)
        self.seed_points = tuple(
            tuple(box.check_point(p, f"seed point {i}")) for i, p in enumerate(seed_points)
        )
        self.num_restarts = int(num_restarts)
        self.raw_samples = int(raw_samples)
        self._points: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ points
    def remember_params(self, step: int, params: Mapping[str, Any]) -> None:
        """Learn the point of decision ``step`` from its request params (``x``)."""
        self._points[int(step)] = self.box.point_in(params, f"decision {step}")

    def point(self, step: int) -> np.ndarray:
        """The point ``(d,)`` of decision ``step`` (KeyError when it does not know it)."""
        return self._points[int(step)].copy()

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``(n,)`` and points ``n x d`` (box units) of every decision it knows."""
        steps = np.array(sorted(self._points), dtype=np.int64)
        points = np.array([self._points[s] for s in steps.tolist()]).reshape(-1, self.box.dim)
        return steps, points

    def ingest(self, observations: Sequence[Observation]) -> None:
        """Add observations; each must be of a step whose point it knows.

        Raises:
            ModelError: An unknown step's point, a non-finite value, or a changed step.
        """
        for ob in observations:
            if ob.step not in self._points or ob.location != self.box.slot(ob.step):
                raise ModelError(
                    f"Observation of step {ob.step} at {ob.location} is not a known box point "
                    f"(expected Location({ob.step}, 0) with its decision's params['x']); "
                    "feed the decisions' params first (remember_params)."
                )
            self._keep(ob)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """``X``: the fitted points in ``[0, 1]^d`` (``n x d``), ``y``: their values ``(n,)``."""
        obs = self._fit_subset()
        X = self.box.to_unit(np.array([self._points[o.step] for o in obs]))
        y = np.array([o.value for o in obs], dtype=np.float64)
        return X.reshape(-1, self.box.dim), y

    # ------------------------------------------------------------------ proposals
    def propose(self, ask: Ask) -> Proposal | None:
        """The point for ``ask.step``: a seed point, a random point, or the acquisition's
        maximiser; ``None`` past the box's slots."""
        modality = self.scalar_target.modality
        if modality not in ask.offered or ask.step >= self.box.capacity:
            return None
        pending = [self.box.point_in(p.params, f"pending decision {p.step}") for p in ask.pending]
        decided = {tuple(x) for s, x in self._points.items() if s < ask.step}
        decided |= {tuple(x) for x in pending}
        rng = np.random.default_rng([self.seed, int(ask.step)])
        score = mean = std = float("nan")
        seeds = [p for p in self.seed_points if p not in decided]
        if seeds:
            point, policy = np.array(seeds[0]), "seed"
        elif self.policy_name == RANDOM or (
            self.n_observations + len(pending) < self.n_initial or not self._ensure_model(ask.step)
        ):
            point, policy = self.box.from_unit(rng.random(self.box.dim)), RANDOM
        else:
            unit, score = self._maximise(
                ask.step, self.box.to_unit(np.reshape(pending, (-1, self.box.dim)))
            )
            point, policy = self.box.from_unit(unit), self.policy_name
        if self._model is not None:
            m, s = predict(self._model, self.box.to_unit(point)[None, :])
            mean, std = float(m[0]), float(s[0])
        self._points[int(ask.step)] = point
        params = self.box.point_params(point)
        location = self.box.slot(ask.step)
        return Proposal(
            step=ask.step,
            instrument=ask.instrument,
            modality=modality,
            location=location,
            policy=policy,
            score=float(score),
            expected_cost=float(ask.price(ask.instrument, modality, location, params)),
            model_version=self.model_version if self._model is not None else -1,
            predicted_mean=mean,
            predicted_std=std,
            t_decided=time.time(),
            params=params,
        )

    def _maximise(self, step: int, pending: np.ndarray) -> tuple[np.ndarray, float]:
        """The acquisition's maximiser on ``[0, 1]^d`` (``(d,)``) and its value."""
        if self._state is None:
            raise ConfigError("No model is loaded; call fit() or load_fit() first.")
        model = believing(self._model, pending.reshape(-1, self.box.dim))
        acqf = build_acquisition(
            self.policy_name, model, best_f=float(self._state.y.max()), params=self.policy_params
        )
        bounds = torch.stack(
            [
                torch.zeros(self.box.dim, dtype=torch.float64),
                torch.ones(self.box.dim, dtype=torch.float64),
            ]
        )
        seed = int(np.random.SeedSequence([self.seed, 6700417, int(step)]).generate_state(1)[0])
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)
            warnings.simplefilter("ignore")  # optimiser and numerical warnings: result kept
            best, value = optimize_acqf(
                acqf,
                bounds=bounds,
                q=1,
                num_restarts=self.num_restarts,
                raw_samples=self.raw_samples,
                options={"seed": seed, "maxiter": 200},
                retry_on_optimization_warning=False,
            )
        unit = best.detach().numpy().reshape(-1).astype(np.float64)
        return np.clip(unit, 0.0, 1.0), float(value.detach().reshape(-1)[0])

    # ------------------------------------------------------------------ output
    def predict_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std ``(n,)`` at ``points`` (``n x d``, box units); NaN
        without a model (fits first if due)."""
        X = self.box.to_unit(np.asarray(points, dtype=np.float64).reshape(-1, self.box.dim))
        if not self._ensure_model(self.n_observations):
            nan = np.full(X.shape[0], np.nan)
            return nan, nan.copy()
        return predict(self._model, X)

    def report(self) -> AgentReport:
        """Mean and std at every decided point's slot (``capacity x 1``, NaN at empty slots),
        and the best observation (its slot)."""
        mean = np.full(self.box.layout, np.nan)
        std = np.full(self.box.layout, np.nan)
        steps, points = self.points()
        if steps.size:
            m, s = self.predict_points(points)
            mean[steps, 0], std[steps, 0] = m, s
        return self._report(mean, std)

    def best_point(self) -> tuple[int, np.ndarray, float] | None:
        """``(step, point (d,), value)`` of the best observation (earliest on ties)."""
        obs = self.observations
        if not obs:
            return None
        best = max(obs, key=lambda o: o.value)
        return best.step, self._points[best.step].copy(), float(best.value)


__all__ = ["RANDOM", "BoxAgent"]
