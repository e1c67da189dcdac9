"""The Bayesian agent over a grid: seed points, random initial design, then a policy.

Decision at step ``k`` depends only on ``(seed, k, observations, pending)``: the random
generator is ``np.random.default_rng([seed, k])``, the model is refitted from data when due
(see :mod:`coscope.agents.base`), and ties break through that generator. An agent rebuilt
from the trace therefore proposes exactly what the original would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coscope.agents.acquisition import (
    believing,
    build_acquisition,
    evaluate,
    policy_names,
    validate_policy,
)
from coscope.agents.base import GridAgent
from coscope.agents.baselines import RandomAgent, RasterAgent
from coscope.agents.selection import select
from coscope.errors import ConfigError
from coscope.models import predict
from coscope.spaces import Space
from coscope.types import FitRecord, Location, Proposal


class GPAgent(GridAgent):
    """Exact-GP agent with a registered acquisition policy.

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        policy: Registered acquisition policy name (``"ei"``, ``"ucb"``, ``"maxvar"`` …).
        policy_params: The policy's options, e.g. ``{"beta": 4.0}``.
        **kwargs: See :class:`~coscope.agents.base.GridAgent` (``seed``, ``n_initial``,
            ``seed_points``, ``refit_every``, ``fit_iterations``, ``batch_size``).

    Raises:
        ConfigError: Unknown policy or option.
    """

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        policy: str = "ei",
        policy_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        validate_policy(policy, policy_params)
        super().__init__(grid_shape, **kwargs)
        self.policy_name = policy
        self.policy_params = dict(policy_params or {})

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Acquisition scores of every pixel, ``(H*W,)``, on the loaded model.

        Args:
            believed: Flat indices of pixels in flight (pending, or chosen earlier in this
                batch). The model is conditioned on them at its own posterior mean (the
                "kriging believer"): the mean is unchanged, the uncertainty around them
                shrinks, so the next choice does not crowd a point already being measured.
        """
        return self.policy_scores(self.policy_name, self.policy_params, believed)

    def policy_scores(
        self, name: str, params: Mapping[str, Any], believed: Sequence[int] = ()
    ) -> np.ndarray:
        """Scores of every pixel, ``(H*W,)``, under registered policy ``name`` with options
        ``params`` (what :meth:`scores` computes for the agent's own policy)."""
        if self._model is None or self._state is None:
            raise ConfigError("No model is loaded; call fit() or load_fit() first.")
        model = believing(self._model, self.candidates[list(believed)])
        acqf = build_acquisition(name, model, best_f=float(self._state.y.max()), params=params)
        return self._evaluate(acqf)

    def _evaluate(self, acqf: Any) -> np.ndarray:
        """Scores of every candidate under ``acqf``, ``(H*W,)`` (subclasses may approximate)."""
        return evaluate(acqf, self._candidates_tensor(), batch_size=self.batch_size).numpy()

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
        """Up to ``n`` proposals for steps ``step, step + 1, …``; ``[]`` when all is measured.

        Order: seed points not yet measured; random pixels until observations + pending +
        chosen reach ``n_initial``; then the policy's best pixels on the current model (fitted
        first if due). Measured and pending pixels are never proposed. Pending pixels (and, for
        ``n > 1``, the pixels chosen before in the same call) enter the acquisition as
        kriging-believer fantasies, see :meth:`scores`.
        """
        excluded = self._excluded(pending)
        rng = np.random.default_rng([self.seed, int(step)])
        chosen: list[tuple[int, str, float]] = [
            (i, "seed", np.nan) for i in self._seed_choices(n, excluded)
        ]
        n_pending = len(set(pending))
        n_random = min(
            n - len(chosen), self.n_initial - self.n_observations - n_pending - len(chosen)
        )
        free = np.flatnonzero(~excluded)
        if n_random > 0 and free.size:
            picks = rng.choice(free, size=min(n_random, free.size), replace=False)
            excluded[picks] = True
            chosen += [(int(i), "random", np.nan) for i in picks]
        remaining = n - len(chosen)
        has_model = False
        if remaining > 0 and not excluded.all():
            has_model = self._ensure_model(step)
            if has_model:
                measured = self._excluded(())
                believed = sorted({self._flat(p) for p in pending} - set(np.flatnonzero(measured)))
                believed += [c[0] for c in chosen]
                for _ in range(remaining):  # greedy batch, one believer update per pick
                    scores = self.scores(believed)
                    picks = select(scores, excluded, 1, rng)
                    if picks.size == 0:
                        break
                    i = int(picks[0])
                    excluded[i] = True
                    believed.append(i)
                    chosen.append((i, self.policy_name, float(scores[i])))
            else:  # nothing observed yet and no initial design asked for: explore at random
                free = np.flatnonzero(~excluded)
                picks = rng.choice(free, size=min(remaining, free.size), replace=False)
                chosen += [(int(i), "random", np.nan) for i in picks]
        if not chosen:
            return []
        has_model = has_model or self._model is not None
        if has_model:
            mean, std = predict(self._model, self.candidates[[c[0] for c in chosen]])
        else:
            mean = std = np.full(len(chosen), np.nan)
        return [
            self._proposal(
                idx,
                step=step + k,
                instrument=instrument,
                modality=modality,
                policy=policy,
                expected_cost=expected_cost,
                score=score,
                mean=mean[k],
                std=std[k],
                model_version=self.model_version if has_model else -1,
            )
            for k, (idx, policy, score) in enumerate(chosen)
        ]


class SelfFittingAgent(GPAgent):
    """A GP agent that fits several models itself (one per objective, one per hypothesis)
    rather than one on the loop's executor, and hands their records over
    (:class:`~coscope.agents.protocols.HandsOverFits`). Subclasses implement :meth:`fit`
    (appending its records to ``_handed``) and set ``_handed = []`` at construction."""

    _handed: list[FitRecord]

    def needs_fit(self, step: int) -> bool:
        """Never: the loop's executor fits one target; this agent fits its models itself
        (:meth:`fit`, when a decision needs them) and hands the records over."""
        del step
        return False

    def take_fits(self) -> list[FitRecord]:
        """Records of the fits made since the last call."""
        out, self._handed = self._handed, []
        return out

    def _ensure_model(self, step: int) -> bool:
        subset = self._fit_subset()
        if subset and tuple(o.step for o in subset) != self._fit_steps:
            self.fit(step)
        return self._model is not None


_BASELINES: dict[str, type[GridAgent]] = {"random": RandomAgent, "raster": RasterAgent}


def agent_policy_names() -> tuple[str, ...]:
    """Every policy a spec may name: acquisition policies and baselines, sorted."""
    return tuple(sorted(set(policy_names()) | set(_BASELINES)))


class StructuredGPAgent(GPAgent):
    """A :class:`GPAgent` whose surrogate is a structured GP: a physical law with priors as
    the GP's mean (:mod:`coscope.models.structured`, docs/structured-gp.md).

    Args:
        grid_shape: The space, or ``(H, W)`` for a pixel grid (a built-in law reads the first
            two input coordinates).
        law: A :mod:`coscope.laws` name or a user's ``package.module:function``.
        priors: Prior overrides by parameter name (``{"dist": ..., args}``).
        **kwargs: See :class:`GPAgent`.
    """

    model_kind = "structured"

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        law: str,
        priors: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(grid_shape, **kwargs)
        self.law = law
        self.priors = {k: dict(v) for k, v in (priors or {}).items()}

    def fit_options(self) -> dict[str, Any]:
        """The law and its prior overrides (options of the ``structured`` model kind)."""
        return {"law": self.law, "priors": self.priors}


def make_agent(policy: str, grid_shape: tuple[int, int] | Space, **kwargs: Any) -> GridAgent:
    """The agent for ``policy``: a baseline (``"random"``, ``"raster"``) or a :class:`GPAgent`.

    Args:
        policy: Baseline name or registered acquisition policy.
        grid_shape: The :class:`~coscope.spaces.Space` (pixel grid, masked grid, table), or
            ``(H, W)`` for a pixel grid.
        **kwargs: Constructor options (``seed``, ``n_initial``, ``seed_points``,
            ``refit_every``, ``fit_iterations``, ``batch_size``, ``policy_params``).

    Raises:
        ConfigError: Unknown policy, or policy options given to a baseline.
    """
    if policy in _BASELINES:
        if kwargs.pop("policy_params", None):
            raise ConfigError(f"Policy {policy!r} takes no policy_params; remove them.")
        return _BASELINES[policy](grid_shape, **kwargs)
    if policy not in policy_names():
        names = ", ".join(sorted({*policy_names(), *_BASELINES}))
        raise ConfigError(f"Unknown policy {policy!r}; choose one of: {names}.")
    return GPAgent(grid_shape, policy=policy, **kwargs)
