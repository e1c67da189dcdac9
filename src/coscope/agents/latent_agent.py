"""Co-orchestration over VAE latents: each modality's spectrum becomes ``d`` latent targets.

:class:`LatentMultiTaskAgent` is the :class:`~coscope.agents.multitask_agent.MultiTaskAgent`
with every modality reduced by its own VAE (:mod:`coscope.models.vae`) instead of a scalar:

* **Tasks** are (modality, latent dimension) pairs, task index ``t = d * i + k`` for modality
  ``i`` (target first) and latent ``k``; the ICM GP has ``T = d * M`` tasks (``rank``
  defaults to ``T``). A measurement of modality ``i`` gives ``d`` observations at its
  location (the posterior-mean latents of its spectrum).
* **VAE schedule.** The VAE of a modality is fitted on the first ``s`` spectra of that
  modality (step order) at ``s`` in ``schedule(n_i, VAE_START, 1, vae_growth)``
  (:func:`~coscope.agents.fit_schedule.schedule`: 3, 5, 8, 12, 18 … with growth 1.5), seed a
  function of (campaign seed, modality, ``s``). Between retrains new spectra are encoded with
  the current VAE; when a VAE retrains, every spectrum of its modality is re-encoded and the
  GP is refitted (``needs_fit`` is keyed by the data prefix **and** the VAE sizes). The state
  is therefore a function of (seed, data) only: a resumed campaign decides identically.
  VAE fits go through :func:`~coscope.models.fitting.fit_model` (kind ``"vae"``) — in this
  process until the loop hands the agent its executor (``use_executor``), then on it (a Dask
  worker, or a Prefect ``fit`` task) — and are handed to the loop by ``take_fits``
  (recorded in the trace and MLflow as model versions).
* **Knowledge gain.** Observing modality ``m`` at ``x`` observes its ``d`` latent tasks
  ``c = {(x, (m, k))}`` jointly; the expected reduction of the target's integrated posterior
  variance, summed over the target's latent tasks ``k'`` (standard units), is::

      G(m, x) = (1 / |Z|) sum_{z in Z} sum_{k'} C(c, (z, k'))^T (C(c, c) + S_m)^-1 C(c, (z, k'))

  with ``C(c, c)`` the ``d x d`` posterior covariance of the candidate's latents and ``S_m``
  their noise. ``gain_per_cost`` maximises ``G / cost``; ``max_uncertainty`` maximises the
  trace of ``C(c, c)``.
* **Maps.** ``predict(m)`` decodes the posterior-mean latents of every pixel to a spectrum and
  applies ``m``'s scalarizer to it (so the map is in the scalarizer's units, comparable with
  the scalar path); its std is the spread of the scalarizer over ``N_SAMPLES`` seeded draws of
  the latents from their marginal posterior. :meth:`predict_spectra` gives the decoded mean
  spectra, :meth:`latent_map` the latent means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.linalg

from coscope.agents.fit_schedule import schedule
from coscope.agents.knowledge_gain import _cholesky, posterior_mean
from coscope.agents.multitask_agent import MultiTaskAgent
from coscope.agents.protocols import Reducer
from coscope.errors import ConfigError
from coscope.models.fitting import Fitter, fit_here
from coscope.models.vae import VaeState, decode, encode
from coscope.types import FitRecord, Measurement

VAE_START = 3
"""Spectra of a modality before its first VAE fit."""
N_SAMPLES = 8
"""Latent draws behind the std of a decoded scalar map."""


class LatentMultiTaskAgent(MultiTaskAgent):
    """Multi-task GP over VAE latents of every modality (see module docstring).

    Args:
        grid_shape: ``(H, W)``.
        reducers: Modality -> scalarizer :class:`Reducer` (used for the reported maps); the
            first key is the target.
        latent_dim: Latent size ``d`` of every modality's VAE, >= 1.
        vae_epochs: Adam epochs per VAE fit.
        vae_growth: Growth factor of the VAE refit schedule, >= 1.
        rank: Task covariance rank (default ``d * M``).
        **options: The :class:`MultiTaskAgent` options (``background_fit`` is refused).
    """

    def __init__(
        self,
        grid_shape: tuple[int, int],
        reducers: Mapping[str, Reducer],
        *,
        latent_dim: int = 2,
        vae_epochs: int = 300,
        vae_growth: float = 1.5,
        rank: int | None = None,
        **options: Any,
    ) -> None:
        if options.get("background_fit"):
            raise ConfigError(
                "latent_dim does not work with background_fit: set background_fit: 0 "
                "or latent_dim: 0"
            )
        if int(latent_dim) < 1 or float(vae_growth) < 1:
            raise ConfigError(
                f"latent_dim must be >= 1 and vae_growth >= 1, got {latent_dim}, {vae_growth}"
            )
        super().__init__(grid_shape, reducers, **options)
        self.latent_dim = int(latent_dim)
        self.n_tasks = self.latent_dim * len(self.modalities)
        self.rank = int(rank or self.n_tasks)
        self.vae_epochs = int(vae_epochs)
        self.vae_growth = float(vae_growth)
        self._spectra: dict[int, np.ndarray] = {}  # step -> signal
        self._vae: dict[int, VaeState] = {}  # modality index -> current VAE
        self._latent: dict[int, np.ndarray] = {}  # step -> (d,) latents (current VAE)
        self.fitter: Fitter = fit_here  # the loop's executor once it calls use_executor

    def use_executor(self, executor: Any) -> None:
        """Fit the VAEs with ``executor.fit`` (the campaign loop's executor: Dask)."""
        self.fitter = executor.fit

    # ------------------------------------------------------------------ data
    def ingest_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Keep the spectra (and their scalars), retrain due VAEs, encode new spectra."""
        super().ingest_measurements(measurements)
        touched = set()
        for m in measurements:
            if m.modality in self.reducers:
                self._spectra[m.step] = np.asarray(m.signal, dtype=np.float64).reshape(-1)
                touched.add(self.modalities.index(m.modality))
        for i in sorted(touched):
            steps = [s for s in sorted(self._obs) if self._obs[s][0] == i]
            points = schedule(len(steps), VAE_START, 1, self.vae_growth)
            if points and (i not in self._vae or self._vae[i].n_train != points[-1]):
                self._fit_vae(i, steps[: points[-1]])
            if i in self._vae:  # (re-)encode what the current VAE has not encoded
                todo = [s for s in steps if s not in self._latent]
                if todo:
                    z = encode(self._vae[i], np.stack([self._spectra[s] for s in todo]))
                    self._latent.update(zip(todo, z, strict=True))

    def _fit_vae(self, i: int, steps: list[int]) -> None:
        size = len(steps)
        seed = int(np.random.SeedSequence([self.seed, 0x7AE, i, size]).generate_state(1)[0])
        spectra = np.stack([self._spectra[s] for s in steps])
        state = self.fitter(
            "vae", spectra, np.zeros(size), seed, self.vae_epochs, {"latent_dim": self.latent_dim}
        )
        self._vae[i] = state
        for s in [s for s, o in self._obs.items() if o[0] == i]:
            self._latent.pop(s, None)
        record = state.record(self.model_version + 1, len(self._obs))
        record.hyperparameters["modality_index"] = float(i)
        self._own_fits.append(record)

    def _data(self, steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """``d`` rows per step whose modality has a VAE: latent task ``d * i + k``, value
        the ``k``-th latent; ``X`` is ``n x (p + 1)``, ``y`` ``(n,)``."""
        d = self.latent_dim
        steps = [s for s in steps if s in self._latent]
        if not steps:
            return np.empty((0, self.coords.shape[1] + 1)), np.empty(0)
        mods = np.array([self._obs[s][0] for s in steps], dtype=np.int64)
        flats = np.array([self._obs[s][1] for s in steps], dtype=np.int64)
        tasks = (d * mods[:, None] + np.arange(d)[None, :]).reshape(-1)
        y = np.stack([self._latent[s] for s in steps]).reshape(-1)
        return self._rows(tasks, np.repeat(flats, d)), y

    def _expand(self, mods: np.ndarray, flats: np.ndarray) -> np.ndarray:
        """Rows of every latent task of modalities ``mods`` at ``flats``, ``(c * d) x (p+1)``."""
        d = self.latent_dim
        tasks = (d * np.asarray(mods, dtype=np.int64)[:, None] + np.arange(d)).reshape(-1)
        return self._rows(tasks, np.repeat(np.asarray(flats, dtype=np.int64), d))

    # ------------------------------------------------------------------ fitting
    def fit_options(self) -> dict[str, Any]:
        """Options of the ``multitask`` fitter (``d * M`` tasks)."""
        return {"n_tasks": self.n_tasks, "rank": self.rank, "boundaries": self.boundaries}

    def _fit_key(self) -> tuple:
        prefix = tuple(sorted(self._obs)[: self._fit_size()])
        return prefix, tuple(sorted((i, v.n_train) for i, v in self._vae.items()))

    def needs_fit(self, step: int) -> bool:
        """Due when the schedule's data prefix or any VAE changed since the loaded fit."""
        del step
        return self._fit_size() > 0 and bool(self._latent) and self._fit_key() != self._fitted_steps

    def load_fit(self, state: Any, version: int, step: int | None = None) -> FitRecord:
        """Use a fitted multi-task state as model ``version`` (keyed by data and VAEs); its
        record's ``step`` counts measurements (the loop passes rows, ``d`` per measurement)."""
        del step
        record = super().load_fit(state, version, self._fit_size())
        self._fitted_steps = self._fit_key()
        return record

    def vae(self, modality: str) -> VaeState | None:
        """The current VAE of ``modality`` (``None`` before its first fit)."""
        return self._vae.get(self.modalities.index(modality))

    # ------------------------------------------------------------------ output
    def _latent_posterior(self, i: int, flats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of modality ``i``'s latents at ``flats`` (latent units), ``c x d``."""
        s = self._state
        X, y = self.all_data()
        tasks = X[:, -1].astype(np.int64)
        points = self._expand(np.full(len(flats), i), flats)
        pt = points[:, -1].astype(np.int64)
        mean, var = posterior_mean(self._kernel, X, (y - s.y_mean[tasks]) / s.y_std[tasks], points)
        mean = mean * s.y_std[pt] + s.y_mean[pt]
        std = np.sqrt(var) * s.y_std[pt]
        return mean.reshape(-1, self.latent_dim), std.reshape(-1, self.latent_dim)

    def _posterior(self, task: int, flats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decoded scalar of modality ``task`` at ``flats``: mean from the decoded mean
        latents, std over :data:`N_SAMPLES` seeded latent draws (scalarizer units)."""
        flats = np.asarray(flats, dtype=np.int64)
        if task not in self._vae:
            nan = np.full(len(flats), np.nan)
            return nan, nan.copy()
        mean, std = self._latent_posterior(task, flats)
        reducer, vae = self.reducers[self.modalities[task]], self._vae[task]
        scalar = np.array([reducer(s) for s in decode(vae, mean)])
        rng = np.random.default_rng([self.seed, 0xD7A, task, len(self._obs)])
        draws = mean[None] + std[None] * rng.standard_normal((N_SAMPLES, *mean.shape))
        spectra = decode(vae, draws.reshape(-1, self.latent_dim))
        samples = np.array([reducer(s) for s in spectra]).reshape(N_SAMPLES, -1)
        return scalar, samples.std(axis=0)

    def latent_map(self, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of ``modality``'s latents over the grid, ``(H, W, d)``."""
        h, w = self.grid_shape
        if not self._ensure_model():
            nan = np.full((h, w, self.latent_dim), np.nan)
            return nan, nan.copy()
        mean, std = self._latent_posterior(self.modalities.index(modality), np.arange(h * w))
        return mean.reshape(h, w, -1), std.reshape(h, w, -1)

    def predict_spectra(self, modality: str) -> np.ndarray:
        """Decoded posterior-mean spectra of ``modality`` over the grid, ``(H, W, m)``."""
        h, w = self.grid_shape
        mean, _ = self.latent_map(modality)
        vae = self.vae(modality)
        if vae is None or not np.isfinite(mean).all():
            n = len(self.reducers[modality].axis)
            return np.full((h, w, n), np.nan)
        return decode(vae, mean.reshape(h * w, -1)).reshape(h, w, -1)

    # ------------------------------------------------------------------ decisions
    def _scores(
        self,
        tasks: np.ndarray,
        flats: np.ndarray,
        pend_tasks: np.ndarray,
        pend_flats: np.ndarray,
        costs: np.ndarray,
    ) -> np.ndarray:
        """Joint gain of each candidate's ``d`` latents on the target's latents (docstring)."""
        d, kern = self.latent_dim, self._kernel
        X, _ = self.all_data()
        cond = np.vstack([X, self._expand(pend_tasks, pend_flats)])
        cand = self._expand(tasks, flats)
        ref = self._expand(np.zeros(len(self.reference), dtype=np.int64), self.reference)
        c = len(tasks)
        t = cand[:, -1].astype(np.int64).reshape(c, d)
        prior = kern.task_cov[t[:, :, None], t[:, None, :]]  # c x d x d, same x: RBF = 1
        cov = kern(cand, ref)
        block = prior.copy()
        if len(cond):
            chol = _cholesky(kern(cond, cond), kern.noise, cond)
            w_c = scipy.linalg.solve_triangular(chol, kern(cond, cand), lower=True)
            w_r = scipy.linalg.solve_triangular(chol, kern(cond, ref), lower=True)
            cov = cov - w_c.T @ w_r
            w3 = w_c.reshape(-1, c, d)
            block = prior - np.einsum("nci,ncj->cij", w3, w3)
        if self.policy != "gain_per_cost":
            return np.trace(block, axis1=1, axis2=2)
        a = block + np.eye(d)[None] * kern.noise[t][:, :, None]
        v = cov.reshape(c, d, -1)
        vvt = np.einsum("cir,cjr->cij", v, v) / len(self.reference)
        gain = np.trace(np.linalg.solve(a, vvt), axis1=1, axis2=2)
        return np.clip(gain, 0.0, None) / np.maximum(costs, 1e-12)
