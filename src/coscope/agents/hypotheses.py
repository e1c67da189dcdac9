"""Hypothesis learning over a finite space: competing structured GPs weighed by evidence.

Policy ``hypotheses`` (docs/hypotheses.md; Ziatdinov et al., "Bayesian active learning for
scanning probe microscopy: from Gaussian processes to hypothesis learning"). Each hypothesis
is a surrogate of the one fitting entry point: a structured GP whose mean is a physical law
(model kind ``structured``) or a plain GP, "no physics" (kind ``gp``). At every refresh of
the fit schedule (:mod:`coscope.agents.base`) the agent

1. fits every hypothesis on the same data through ``self.fitter`` — in process, or on the
   loop's executor (a Dask worker) once the loop calls :meth:`use_executor`;
2. scores each by its leave-one-out predictive log score ``elpd_loo``
   (:func:`coscope.models.evidence.loo_log_density`) and turns the scores into probabilities
   (pseudo-BMA weights, :func:`coscope.models.evidence.model_probabilities`);
3. hands one fit record per hypothesis to the loop (:meth:`take_fits`), each carrying
   ``role`` ``hypothesis.<name>``, ``elpd``, ``prob`` and ``leading`` beside the law's fitted
   parameters: the trace holds the evidence of every hypothesis at every refresh.

It proposes the candidate with the highest discriminating score
(:func:`coscope.agents.discrimination.discrimination_scores`: information about which
hypothesis holds, plus ``explore`` times information about the map), pending points entering
every hypothesis as kriging-believer fantasies. Its maps (:meth:`report`) are the
probability-weighted mixture of the hypotheses' predictions; its verdict (:meth:`verdict`)
names the leading hypothesis. Decisions depend on ``(seed, step, data)`` only, as for every
grid agent, so a resumed campaign decides as the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from coscope.agents.acquisition import believing
from coscope.agents.agent import SelfFittingAgent
from coscope.agents.base import GridAgent
from coscope.agents.discrimination import discrimination_scores, mixture_moments
from coscope.catalog import check_policy
from coscope.errors import ConfigError, ModelError
from coscope.models import load_model, predict
from coscope.models.evidence import loo_log_density, model_probabilities
from coscope.models.fitting import Fitter, fit_here
from coscope.models.gp import gp_scalars
from coscope.spaces import Space
from coscope.types import FitRecord

NO_PHYSICS = "none"
"""``law`` of the "no physics" hypothesis: a plain GP."""


@dataclass(frozen=True)
class Hypothesis:
    """One competing model.

    Attributes:
        name: Its name in records, metrics and the verdict (unique in a campaign).
        law: A :mod:`coscope.laws` law, a user's ``package.module:function``, or
            :data:`NO_PHYSICS` (a plain GP).
        priors: Prior overrides of the law's parameters.
    """

    name: str
    law: str
    priors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """Model kind of the fitting entry point (``structured`` or ``gp``)."""
        return "gp" if self.law == NO_PHYSICS else "structured"

    def options(self) -> dict[str, Any]:
        """Options of :func:`coscope.models.fitting.fit_model` for this hypothesis."""
        if self.law == NO_PHYSICS:
            return {}
        return {"law": self.law, "priors": {k: dict(v) for k, v in self.priors.items()}}


class HypothesisAgent(SelfFittingAgent):
    """Competing hypotheses, weighed by evidence, measured where they disagree (module doc).

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        hypotheses: Two or more, with unique names.
        policy_params: ``{"explore": 1.0}``: weight of the map information (``>= 0``).
        **kwargs: See :class:`~coscope.agents.base.GridAgent`.

    Raises:
        ConfigError: Fewer than two hypotheses, a repeated name, an unknown option or an
            option out of range.
    """

    policy_name = "hypotheses"

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        hypotheses: Sequence[Hypothesis],
        policy_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        names = [h.name for h in hypotheses]
        if len(names) < 2:
            raise ConfigError("policy 'hypotheses' needs at least two models to weigh.")
        if len(set(names)) != len(names):
            raise ConfigError(f"hypothesis names must be unique; got {names}.")
        params = dict(policy_params or {})
        try:
            check_policy(self.policy_name, "gp", params)  # options as coscope.catalog declares
        except ValueError as exc:
            raise ConfigError(f"{exc}.") from None
        # GPAgent's __init__ validates a single-model acquisition name: skip to the base
        GridAgent.__init__(self, grid_shape, **kwargs)
        self.hypotheses = tuple(hypotheses)
        self.policy_params = params
        self.explore = float(params.get("explore", 1.0))
        self.fitter: Fitter = fit_here
        self._models: list[Any] = []
        self._noise = np.zeros(len(self.hypotheses))
        self.elpd = np.full(len(self.hypotheses), np.nan)
        self.probs = np.full(len(self.hypotheses), 1.0 / len(self.hypotheses))
        self._handed: list[FitRecord] = []
        self._conditioned = False

    # ------------------------------------------------------------------ fitting
    def use_executor(self, executor: Any) -> None:
        """Fit the hypotheses with ``executor.fit`` (the campaign loop's executor)."""
        self.fitter = executor.fit

    def fit(self, step: int) -> FitRecord:
        """Fit every hypothesis on the fitted subset, weigh them; returns the leader's record."""
        X, y = self.training_data()
        if X.shape[0] == 0:
            raise ModelError("Cannot fit a surrogate before any observation was ingested.")
        seed = self.fit_seed()
        states = [
            self.fitter(h.kind, X, y, seed, self.fit_iterations, h.options())
            for h in self.hypotheses
        ]
        self._models = [load_model(s) for s in states]
        self._noise = np.array([gp_scalars(m)["noise"] for m in self._models])
        self.elpd = np.array([float(loo_log_density(m).sum()) for m in self._models])
        self.probs = model_probabilities(self.elpd)
        lead = self.leader()
        self._state, self._model = states[lead], self._models[lead]
        self._conditioned = False
        self._fit_steps = tuple(o.step for o in self._fit_subset())
        self.model_version += 1
        records = []
        for k, (h, state) in enumerate(zip(self.hypotheses, states, strict=True)):
            record = state.record(-1, step)
            extra = {
                "role": f"hypothesis.{h.name}",
                "hypothesis": h.name,
                "elpd": float(self.elpd[k]),
                "prob": float(self.probs[k]),
                "leading": float(k == lead),
            }
            records.append(replace(record, hyperparameters={**record.hyperparameters, **extra}))
        self._handed += records
        self.last_fit = replace(records[lead], version=self.model_version)
        return self.last_fit

    def condition_on(self, state: Any) -> None:
        """Predict and score with ``state`` alone from now on (retrace)."""
        super().condition_on(state)
        self._conditioned = True

    # ------------------------------------------------------------------ weighing
    def leader(self) -> int:
        """Index of the most probable hypothesis (the first on ties)."""
        return int(np.argmax(self.probs))

    def verdict(self) -> dict[str, Any] | None:
        """The leading hypothesis, its probability, the data size and every hypothesis'
        probability and ``elpd`` (nats); None before the first fit."""
        if not self._models:
            return None
        lead = self.leader()
        return {
            "leading": self.hypotheses[lead].name,
            "probability": float(self.probs[lead]),
            "n_observations": len(self._fit_steps or ()),
            "probabilities": {
                h.name: float(p) for h, p in zip(self.hypotheses, self.probs, strict=True)
            },
            "elpd": {h.name: float(e) for h, e in zip(self.hypotheses, self.elpd, strict=True)},
        }

    def hypothesis_metrics(self) -> dict[str, float]:
        """``hypothesis.<name>.prob`` and ``hypothesis.<name>.elpd`` of the data known now
        (fits first if due; empty before any observation)."""
        if not self._ensure_model(self.n_observations):
            return {}
        out: dict[str, float] = {}
        for h, p, e in zip(self.hypotheses, self.probs, self.elpd, strict=True):
            out[f"hypothesis.{h.name}.prob"] = float(p)
            out[f"hypothesis.{h.name}.elpd"] = float(e)
        return out

    # ------------------------------------------------------------------ scoring and maps
    def _predictions(self, believed: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Every hypothesis' latent mean and variance at every candidate, ``K x (H*W)``."""
        points = self.candidates[list(believed)]
        means, variances = [], []
        for model in self._models:
            mean, std = predict(
                believing(model, points), self.candidates, batch_size=self.batch_size
            )
            means.append(mean)
            variances.append(std**2)
        return np.array(means), np.array(variances)

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Discriminating scores of every candidate, ``(H*W,)``, nats (module docstring)."""
        if not self._models:
            raise ConfigError("No model is loaded; call fit() first.")
        if self._conditioned:  # retrace: one surrogate, so what is left is the map
            return super().policy_scores("maxvar", {}, believed)
        means, variances = self._predictions(believed)
        score, _ = discrimination_scores(
            means, variances, self._noise, self.probs, explore=self.explore
        )
        return score

    def predict_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """The probability-weighted mixture of the hypotheses at every candidate: mean and
        std ``(H*W,)`` (the loaded surrogate alone after :meth:`condition_on`)."""
        if self._conditioned or not self._models:
            return super().predict_candidates()
        means, variances = self._predictions()
        return mixture_moments(means, variances, self.probs)
