"""The DKL agent: the GP agent's decisions, on a deep kernel over structure patches.

The agent's model inputs are the patch features of the sample's structure image (one row
per pixel, :func:`coscope.models.patch_features`), not coordinates. Everything else is the
:class:`~coscope.agents.agent.GPAgent`: seed points, then random pixels up to
``n_initial``, then the policy; pending pixels as kriging-believer fantasies; the fit
schedule and determinism of :mod:`coscope.agents.base`.

How it reuses the GP agent: a fitted DKL's posterior at features ``F`` is an exact GP's
posterior at the latent points ``Z = g(F)`` (:func:`coscope.models.load_latent_model`).
After each fit the agent embeds every pixel once (``H*W x latent_dim``) and exposes those
latent points as :attr:`candidates` — the inputs its loaded model takes — so the GP agent's
acquisition (botorch's analytic EI / UCB / MaxVar through
:mod:`coscope.agents.acquisition`), believer conditioning and report run unchanged. The
loaded model is a :class:`~coscope.models.latent_gp.LatentGP` (the same exact posterior
with a cached factor, ~5x faster than botorch's per batch; Thompson's joint draws use the
botorch ``SingleTaskGP``). Before
the first fit :attr:`candidates` are the pixel coordinates (used only for their count).

Warm starts (``warm_start=True``): a cold fit (``fit_iterations`` Adam steps from a seeded
initialisation) is made whenever the fitted data size is a multiple of ``cold_every`` — the
*anchor*; every fit in between warm-starts from the latest anchor with ``warm_iterations``
steps, guarded by :func:`coscope.models.fit_dkl` (redone cold when the warm fit is worse than
its anchor or collapsed). Warm fits never chain, so drift cannot accumulate (the STACK.md
"warm-start trap" came from chaining), and every fit is still a function of the data alone:
the anchor is the cold fit of the first ``cold_every * (n // cold_every)`` observations in
step order, which an agent rebuilt from the trace refits once and caches.

Between refits (``refit_every > 1``) the loaded latent GP is conditioned exactly on the
observations the fit has not seen (same embedding and hyperparameters), so every decision
and every reported map uses all the data; the network is refitted on schedule. This is the
warm path of a decision: no training, ``O(n^2)`` conditioning plus scoring.

Policies: every registered acquisition policy, plus ``"thompson"`` (one joint posterior
draw, :mod:`coscope.agents.thompson`; deviates from ``np.random.default_rng([seed, step,
7])``), ``"map"`` (integrated variance reduction) and ``"balance"`` (a ``map_share`` of
the picks for the map, the rest UCB), :mod:`coscope.agents.map_objective`. The network and
training choices come from a :class:`~coscope.models.dkl_config.DKLConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from coscope.agents.acquisition import believing, evaluate
from coscope.agents.agent import GPAgent
from coscope.agents.dkl_scoring import EXACT_MAX, lattice_scores
from coscope.agents.map_objective import (
    DKL_POLICIES,
    check_dkl_policy,
    map_or_find,
    map_scores,
    reference_points,
)
from coscope.agents.thompson import thompson_scores
from coscope.errors import ConfigError, ModelError
from coscope.models import DKLState, embed, fit_model, load_latent_model, predict
from coscope.models.dkl_config import DKLConfig
from coscope.models.latent_gp import LatentGP
from coscope.models.patches import PatchGrid
from coscope.spaces import Space
from coscope.types import FitRecord, Location, Proposal

THOMPSON = "thompson"
_SEED_SALT = 104729  # as GridAgent.fit_seed: the anchor at size a has the seed of the fit at a


class DKLAgent(GPAgent):
    """Deep-kernel agent over an ``H x W`` grid with per-pixel structure features.

    Args:
        grid_shape: The :class:`~coscope.spaces.Space`, or ``(H, W)`` for a pixel grid.
        features: Per-cell features of the space's layout, ``(H*W) x p``, row-major
            (``Location.flat(W)``; for a table its normalised feature columns), or
            a :class:`~coscope.models.patches.PatchGrid` of the ``H x W`` structure image
            (rows built on demand: bounded memory for large grids).
        policy: ``"thompson"``, ``"map"``, ``"balance"`` (:mod:`coscope.agents.map_objective`)
            or a registered acquisition policy (``"ei"``, ``"ucb"`` …).
        policy_params: The policy's options (``"thompson"`` and ``"map"`` take none;
            ``"balance"`` takes ``map_share`` and ``beta``).
        latent_dim: Dimension of the DKL latent embedding (overrides ``config.latent_dim``).
        config: Network, GP and training choices of every fit (default
            :class:`~coscope.models.dkl_config.DKLConfig`).
        warm_start: Warm-start fits from the latest cold anchor (module docstring).
        cold_every: Anchor period: a cold fit whenever the fitted size is a multiple of it.
        warm_iterations: Adam steps of a warm fit (``fit_iterations`` is the cold count).
        **kwargs: See :class:`~coscope.agents.base.GridAgent` (``seed``, ``n_initial``,
            ``seed_points``, ``refit_every``, ``fit_iterations``, ``batch_size``).

    Raises:
        ConfigError: Features of the wrong shape or non-finite, unknown policy or option.
    """

    model_kind = "dkl"
    """Registered model kind (:func:`coscope.models.fit_model`) this agent's fits use."""
    _latent: np.ndarray | None = None
    _gp = None  # the latent SingleTaskGP (Thompson's joint draws); _model is its LatentGP
    _fitted: LatentGP | None = None  # the fit's own LatentGP, before catching up
    _caught_up = 0  # observations _model is conditioned on
    exact_max = EXACT_MAX
    """Candidates above which scores come from the latent lattice (2-D latent only)."""

    def __init__(
        self,
        grid_shape: tuple[int, int] | Space,
        *,
        features: np.ndarray | PatchGrid,
        policy: str = "ei",
        policy_params: Mapping[str, Any] | None = None,
        latent_dim: int | None = None,
        config: DKLConfig | None = None,
        warm_start: bool = False,
        cold_every: int = 10,
        warm_iterations: int = 20,
        **kwargs: Any,
    ) -> None:
        if policy == THOMPSON and policy_params:
            raise ConfigError(f"Policy 'thompson' takes no options; remove {dict(policy_params)}.")
        own = policy == THOMPSON or policy in DKL_POLICIES
        if policy in DKL_POLICIES:
            check_dkl_policy(policy, policy_params)
        # GPAgent validates registered policies; thompson, map and balance are handled here.
        super().__init__(
            grid_shape,
            policy="maxvar" if own else policy,
            policy_params=None if own else policy_params,
            **kwargs,
        )
        self.policy_name = policy
        self.policy_params = dict(policy_params or {})
        H, W = self.grid_shape
        if isinstance(features, PatchGrid):
            if features.image_shape != (H, W):
                raise ConfigError(
                    f"The patch grid covers a {features.image_shape} image, the agent a "
                    f"{H} x {W} grid; build it from the sample's structure image."
                )
            F = features
        else:
            F = np.asarray(features, dtype=np.float64)
            if F.ndim != 2 or F.shape[0] != H * W or F.shape[1] < 1:
                raise ConfigError(
                    f"features must have shape (H*W, p) = ({H * W}, p) for the {H} x {W} "
                    f"grid; got {np.shape(features)}. Build them with "
                    "coscope.models.patch_features."
                )
            if not np.isfinite(F).all():
                raise ConfigError("features contain NaN or inf; fix the structure image first.")
        cfg = config or DKLConfig()
        if latent_dim is not None:
            if int(latent_dim) < 1:
                raise ConfigError(f"latent_dim must be >= 1; got {latent_dim!r}.")
            cfg = dataclasses.replace(cfg, latent_dim=int(latent_dim))
        if int(cold_every) < 1 or int(warm_iterations) < 1:
            raise ConfigError(
                f"cold_every and warm_iterations must be >= 1; got {cold_every!r} and "
                f"{warm_iterations!r}."
            )
        self.features = F
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        self.warm_start = bool(warm_start)
        self.cold_every = int(cold_every)
        self.warm_iterations = int(warm_iterations)
        self._anchor: DKLState | None = None
        self._anchor_steps: tuple[int, ...] = ()
        self._draw_rng: np.random.Generator | None = None

    # ------------------------------------------------------------ model inputs
    @property
    def candidates(self) -> np.ndarray:
        """Model inputs of every pixel: latent points ``(H*W) x latent_dim`` once fitted,
        pixel-centre coordinates ``(H*W) x 2`` before."""
        return self._latent if self._latent is not None else self.coordinates

    @candidates.setter
    def candidates(self, value: np.ndarray) -> None:
        self.coordinates = value
        self._latent = None

    def embedding(self) -> np.ndarray | None:
        """Latent embedding of every pixel under the current model, ``(H*W) x latent_dim``;
        ``None`` before a DKL is loaded (:class:`~coscope.agents.protocols.HasEmbedding`)."""
        return None if self._latent is None else self._latent.copy()

    def fit_options(self) -> dict[str, Any]:
        """Keyword options for :func:`coscope.models.fit_model` with :attr:`model_kind`.

        With warm starts, between anchors: ``init`` (the anchor state, fitted here first if
        this agent has not seen it, e.g. after a resume) and ``warm_iterations``.
        """
        options: dict[str, Any] = {"config": self.config}
        a = self._anchor_size()
        if self.warm_start and 0 < a < self._n_fit():
            options["init"] = self._anchor_state(a)
            options["warm_iterations"] = self.warm_iterations
        return options

    def _anchor_size(self) -> int:
        return self.cold_every * (self._n_fit() // self.cold_every)

    def _anchor_state(self, a: int) -> DKLState:
        """The cold fit of the first ``a`` observations in step order (cached)."""
        obs = self.observations[:a]
        steps = tuple(o.step for o in obs)
        if self._anchor is None or self._anchor_steps != steps:
            F = self.features[np.array([self._flat(o.location) for o in obs], dtype=np.int64)]
            y = np.array([o.value for o in obs], dtype=np.float64)
            seed = np.random.SeedSequence([self.seed, _SEED_SALT, a]).generate_state(1)[0]
            self._anchor = fit_model(
                self.model_kind, F, y, int(seed), self.fit_iterations, config=self.config
            )
            self._anchor_steps = steps
        return self._anchor

    # ------------------------------------------------------------ fitting
    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """What the next fit trains on: features ``F`` (``n x p``) and ``y`` (``(n,)``)."""
        obs = self._fit_subset()
        F = self.features[np.array([self._flat(o.location) for o in obs], dtype=np.int64)]
        y = np.array([o.value for o in obs], dtype=np.float64)
        return F, y

    def load_fit(self, state: DKLState, version: int, step: int | None = None) -> FitRecord:
        """Use a fitted :class:`~coscope.models.DKLState` as model ``version``; no refit."""
        if not isinstance(state, DKLState):
            raise ModelError(
                f"DKLAgent needs a DKLState from fit_model('dkl', ...); got "
                f"{type(state).__name__}. Fit with the agent's model_kind."
            )
        F, y = self.training_data()
        subset = self._fit_subset()
        same = (
            state.n_train == len(subset)
            and np.array_equal(F, state.F)
            and np.array_equal(y, state.y)
        )
        self._fit_steps = tuple(o.step for o in subset) if same else None
        if same and self.warm_start and not state.warm and len(subset) == self._anchor_size():
            self._anchor, self._anchor_steps = state, self._fit_steps  # a cold anchor
        self._state = state
        self._gp = load_latent_model(state)
        self._model = self._fitted = LatentGP.from_model(self._gp)
        self._caught_up = state.n_train
        big = self.features.shape[0] > self.exact_max
        self._latent = embed(state, self.features, dtype=torch.float32 if big else torch.float64)
        self.model_version = int(version)
        self.last_fit = state.record(version, self.n_observations if step is None else step)
        return self.last_fit

    def fit(self, step: int) -> FitRecord:
        """Fit a DKL locally on :meth:`training_data` (cold, or warm from the anchor when
        warm starts are on); load it as the next version."""
        F, y = self.training_data()
        if F.shape[0] == 0:
            raise ModelError("Cannot fit a surrogate before any observation was ingested.")
        state = fit_model(
            self.model_kind,
            F,
            y,
            self.fit_seed(),
            self.fit_iterations,
            **self.fit_options(),
        )
        return self.load_fit(state, self.model_version + 1, step)

    def _ensure_model(self, step: int) -> bool:
        """Fit if due, then condition the loaded latent GP on the observations the fit has
        not seen (``refit_every > 1``): exact with the fit's embedding and hyperparameters,
        ``O(n^2)`` per catch-up, so every decision and map uses all the data."""
        if not super()._ensure_model(step):
            return False
        if self._fit_steps is None or self._fitted is None:
            return True
        extra = self.observations[len(self._fit_steps) :]
        if len(self._fit_steps) + len(extra) != self._caught_up:
            model = self._fitted
            if extra:
                idx = [self._flat(o.location) for o in extra]
                y = torch.tensor([[o.value] for o in extra], dtype=torch.float64)
                model = model.condition_on_observations(
                    torch.as_tensor(self._latent[idx], dtype=torch.float64), y
                )
            self._model, self._caught_up = model, len(self._fit_steps) + len(extra)
        return True

    # ------------------------------------------------------------ deciding
    def _evaluate(self, acqf: Any) -> np.ndarray:
        """Exact scores up to ``EXACT_MAX`` candidates; above, on a 2-D latent, the lattice
        approximation of :mod:`coscope.agents.dkl_scoring` (exact for the best)."""
        Z = self.candidates
        if Z.shape[0] <= self.exact_max or Z.shape[1] != 2:
            return super()._evaluate(acqf)

        def exact(points: np.ndarray) -> np.ndarray:
            X = torch.as_tensor(points, dtype=torch.float64)
            return evaluate(acqf, X, batch_size=self.batch_size).numpy()

        return lattice_scores(exact, Z)

    def scores(self, believed: Sequence[int] = ()) -> np.ndarray:
        """Acquisition scores of every pixel, ``(H*W,)`` (see :meth:`GPAgent.scores`).

        For ``"thompson"``: one posterior draw (conditioned on the believed pixels at their
        posterior mean), ``-inf`` at measured and believed pixels and at pixels left out of
        the draw (more than 5,000 eligible, see :mod:`coscope.agents.thompson`).
        """
        if self.policy_name in DKL_POLICIES:
            return self._map_or_find_scores(believed)
        if self.policy_name != THOMPSON:
            return super().scores(believed)
        if self._model is None:
            raise ConfigError("No model is loaded; call fit() or load_fit() first.")
        excluded = self._excluded(())
        excluded[list(believed)] = True
        model = believing(self._gp, self.candidates[list(believed)])
        rng = self._draw_rng or np.random.default_rng([self.seed, self.n_observations, 7])
        return thompson_scores(model, self.candidates, excluded, rng)

    def _map_or_find_scores(self, believed: Sequence[int]) -> np.ndarray:
        """``"map"``: variance reduction; ``"balance"``: map or UCB by the pick's index."""
        if self._model is None or self._state is None:
            raise ConfigError("No model is loaded; call fit() or load_fit() first.")
        k = self.n_observations + len(believed)  # points known or in flight: the pick index
        if map_or_find(self.policy_name, self.policy_params, k) == "find":
            beta = float(self.policy_params.get("beta", 4.0))
            return self.policy_scores("ucb", {"beta": beta}, believed)
        model = self._model
        if len(believed):
            zb = self.candidates[list(believed)]
            mean, _ = predict(model, zb)
            model = model.condition_on_observations(
                torch.as_tensor(zb, dtype=torch.float64),
                torch.as_tensor(mean, dtype=torch.float64).unsqueeze(-1),
            )
        Z = self.candidates
        R = reference_points(Z)
        if Z.shape[0] <= self.exact_max or Z.shape[1] != 2:
            return map_scores(model, Z, reference=R, batch_size=self.batch_size)
        return lattice_scores(lambda pts: map_scores(model, pts, reference=R), Z)

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
        """As :meth:`GPAgent.suggest`, on the DKL; Thompson draws seeded by ``(seed, step)``."""
        self._draw_rng = np.random.default_rng([self.seed, int(step), 7])
        try:
            return super().suggest(
                n,
                step=step,
                instrument=instrument,
                modality=modality,
                pending=pending,
                expected_cost=expected_cost,
            )
        finally:
            self._draw_rng = None
