"""Deep kernel learning (DKL) on structure features: an MLP embedding into an exact GP.

Design:
    * Model: a feature extractor (:mod:`coscope.models.dkl_nets`: by default the MLP
      ``p -> 64 -> 64 -> latent_dim`` with ReLU hidden layers, or a small CNN on patches)
      feeding an exact GP with a constant mean and a ``ScaleKernel(RBF)`` with one
      lengthscale per latent dimension, Gaussian noise bounded below by ``noise_floor``.
      Every choice is a field of :class:`~coscope.models.dkl_config.DKLConfig`, carried by
      the fitted state. Everything is float64 (like :mod:`coscope.models.gp`); at
      ``n <= 300`` the cost is the ``n x p`` network pass, not the precision. The defaults
      and the evidence behind them: ``docs/dkl.md``.
    * Training: the network weights (``lr``) and the GP hyperparameters (``lr_gp``) jointly,
      by Adam on the exact marginal log likelihood, the noise starting at ``noise_init``,
      from inputs standardised (``inputs``: one mean/std over all columns by default) and
      ``y`` standardised (mean, unbiased std — the same constants as botorch's
      ``Standardize``). Every fit is a cold rebuild by default: chaining warm starts from
      the previous step drifted to a constant predictor on real microscopy data (STACK.md,
      "DKL warm-start trap"). ``init`` asks for a warm start of ``warm_iterations`` Adam
      steps from a given state, *guarded*: when the warm fit's loss per point is worse than
      the ``init``'s by more than ``WARM_LOSS_SLACK`` nats, or the GP has collapsed to a
      constant predictor (signal-to-noise variance ratio below ``COLLAPSE_SNR``), the fit
      is redone cold with ``iterations`` steps; ``DKLState.warm`` says which it was. The
      agent (:mod:`coscope.agents.dkl_agent`) warm-starts only from a *cold anchor* fit on
      a prefix of the data, never from another warm fit, so drift cannot accumulate.
    * Restarts (``restarts=k``): ``k`` cold fits from seeds derived from ``seed`` (the first
      is ``seed`` itself); kept: the best final marginal likelihood (``select="mll"``) or
      leave-one-out log predictive density (``"loo"``, :func:`~coscope.models.dkl_train.
      loo_score`). Warm starts never restart.
    * Determinism: the only randomness is the network initialisation, drawn inside
      ``torch.random.fork_rng`` after ``torch.manual_seed(seed)``; the same data, seed and
      ``init`` give a bit-identical state (one torch thread, as every coscope process runs),
      and the caller's global generator is untouched.
    * :class:`DKLState` is plain data (numpy ``state_dict``, standardisation constants,
      training data) — it crosses Dask like :class:`~coscope.models.gp.GPState`.
    * The feature extractor is deterministic, so the DKL posterior at features ``F`` *is*
      the posterior of an exact GP on the latent points ``Z = g(F)``. :func:`load_latent_model`
      returns that GP as a botorch ``SingleTaskGP`` (in ``y`` units through ``Standardize``),
      so botorch's acquisition functions, ``condition_on_observations`` and
      :func:`coscope.models.gp.predict` take it unchanged, and scoring ``m`` candidates
      costs one MLP pass over them plus a 2-D GP prediction.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize

from coscope.errors import ModelError
from coscope.models.dkl_config import DKLConfig
from coscope.models.dkl_nets import build_extractor, first_linear
from coscope.models.dkl_train import COLLAPSE_SNR, WARM_LOSS_SLACK, gp_parts, loo_score, train
from coscope.models.gp import predict as gp_predict
from coscope.models.patches import PatchGrid
from coscope.models.training import FitRecordMixin, check_training_data

DTYPE = torch.float64
NOISE_FLOOR = DKLConfig().noise_floor
__all__ = ["COLLAPSE_SNR", "WARM_LOSS_SLACK", "DKLConfig", "DKLState", "fit_dkl"]


@dataclass(frozen=True, eq=False)
class DKLState(FitRecordMixin):
    """A fitted DKL as plain data (picklable; ``O(n p)`` plus the network's weights).

    Attributes:
        F: Training features, ``n x p`` float64 (raw, as passed to :func:`fit_dkl`).
        y: Training targets, ``(n,)`` float64, original units.
        parameters: The model's ``state_dict`` as numpy arrays (name → array); names under
            ``feature_extractor.`` are the network, the rest the GP and likelihood.
        x_mean: Feature means used to standardise inputs, ``(p,)`` (one value repeated
            for ``inputs="global"``, zeros for ``"none"``).
        x_std: Feature scales used to standardise inputs, ``(p,)`` (1 where constant).
        y_mean: Target mean used to standardise ``y``.
        y_std: Target scale (unbiased std; 1 when ``n == 1`` or ``y`` is constant).
        latent_dim: Dimension of the latent embedding.
        loss: Final negative exact marginal log likelihood per point (standardised units).
        seconds: Wall time of the fit (all restarts).
        seed: Seed the kept fit used.
        iterations: Adam steps taken (of the fit that was kept).
        warm: True when the state is a warm start from an ``init`` that passed the guard,
            False for a cold fit (including a warm start the guard rejected).
        config: The network, GP and training choices (rebuilds the network).
        loo: Leave-one-out log predictive density per point of the latent GP (nats).
    """

    F: np.ndarray
    y: np.ndarray
    parameters: Mapping[str, np.ndarray] = field(repr=False)
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    y_mean: float
    y_std: float
    latent_dim: int
    loss: float
    seconds: float
    seed: int = 0
    iterations: int = 0
    warm: bool = False
    config: DKLConfig = field(default_factory=DKLConfig)
    loo: float = float("nan")

    @property
    def n_train(self) -> int:
        """Number of training points ``n``."""
        return int(self.F.shape[0])

    @property
    def X(self) -> np.ndarray:
        """Alias of :attr:`F`, so code written for ``GPState`` reads the training inputs."""
        return self.F

    def named_hyperparameters(self) -> dict[str, float]:
        """GP hyperparameters in latent units and ``y`` units (network weights are not scalars).

        Returns:
            ``lengthscale_<i>`` per latent dimension, ``outputscale`` and ``noise`` (``y``
            units squared), ``mean`` (``y`` units), ``n_weights`` (network parameter count),
            ``loo`` (nats per point).
        """
        model = load_latent_model(self)
        ls = model.covar_module.base_kernel.lengthscale.detach().reshape(-1).numpy()
        var_y = self.y_std**2
        out = {f"lengthscale_{i}": float(v) for i, v in enumerate(ls)}
        out["outputscale"] = float(model.covar_module.outputscale.detach()) * var_y
        out["noise"] = float(model.likelihood.noise.detach().reshape(-1)[0]) * var_y
        out["mean"] = self.y_mean + float(model.mean_module.constant.detach()) * self.y_std
        out["n_weights"] = float(
            sum(v.size for k, v in self.parameters.items() if k.startswith("feature_extractor."))
        )
        out["loo"] = float(self.loo)
        return out


def _standardise_y(y: np.ndarray) -> tuple[float, float]:
    """Mean and unbiased std of ``y``; std 1 when ``y`` is constant to rounding. The test is
    relative (``std <= 1e-10 |mean|``), so targets in tiny units (metres, ~1e-10) are still
    standardised: an absolute threshold of 1e-8 left them raw, under a noise floor larger
    than their variance (PFM amplitudes mapped at nRMSE ~1e5)."""
    mean = float(y.mean())
    std = float(y.std(ddof=1)) if y.size > 1 else 0.0
    return mean, (std if std > 1e-10 * abs(mean) and std > 0 else 1.0)


def _min_stdv(y_std: float) -> float:
    """botorch ``Standardize``'s threshold that reproduces :func:`_standardise_y`'s choice."""
    return 0.5 * y_std if y_std != 1.0 else 1e300  # 1.0: keep botorch's scale at 1 too


def _standardise_x(F: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    p = F.shape[1]
    if how == "none":
        return np.zeros(p), np.ones(p)
    if how == "global":
        std = float(F.std())
        return np.full(p, float(F.mean())), np.full(p, std if std > 0 else 1.0)
    x_std = F.std(axis=0)
    return F.mean(axis=0), np.where(x_std > 0, x_std, 1.0)


def _restart_seed(seed: int, r: int) -> int:
    if r == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), 7919, r]).generate_state(1)[0])


def fit_dkl(
    F: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    iterations: int = 100,
    latent_dim: int | None = None,
    lr: float | None = None,
    config: DKLConfig | None = None,
    init: DKLState | None = None,
    warm_iterations: int = 20,
) -> DKLState:
    """Fit a DKL jointly on the exact marginal likelihood (deterministic in data, seed, init).

    Args:
        F: Features, ``n x p`` float64 (e.g. rows of :func:`~coscope.models.patch_features`).
        y: Targets, ``(n,)`` float64, finite.
        seed: Seed of the network initialisation (of the first restart; the others derive
            from it).
        iterations: Adam steps of a cold fit (also of the cold redo a failed guard asks for).
        latent_dim: Overrides ``config.latent_dim`` when given.
        lr: Overrides ``config.lr`` (the network's learning rate) when given.
        config: Network, GP and training choices (default :class:`DKLConfig`).
        init: Warm start from this state's parameters (same ``p`` and config), guarded
            (see the module docstring). Off by default.
        warm_iterations: Adam steps of a warm start.

    Returns:
        The fitted state, plain data.

    Raises:
        ModelError: Bad shapes, non-finite data, or an ``init`` of another shape.
    """
    cfg = config or DKLConfig()
    if latent_dim is not None:
        cfg = dataclasses.replace(cfg, latent_dim=int(latent_dim))
    if lr is not None:
        cfg = dataclasses.replace(cfg, lr=float(lr))
    F, y = check_training_data(F, y, "DKL", "F")
    if init is not None and (init.F.shape[1] != F.shape[1] or init.config != cfg):
        raise ModelError(
            f"init was fitted on p={init.F.shape[1]} with {init.config}; this fit has "
            f"p={F.shape[1]} with {cfg}. Drop init for a cold fit."
        )
    t0 = time.perf_counter()
    x_mean, x_std = _standardise_x(F, cfg.inputs)
    y_mean, y_std = _standardise_y(y)
    train_x = torch.as_tensor((F - x_mean) / x_std, dtype=DTYPE)
    train_y = torch.as_tensor((y - y_mean) / y_std, dtype=DTYPE)
    warm = init is not None
    used_seed, loo = int(seed), float("nan")
    if init is not None:
        params, final, snr = train(train_x, train_y, cfg, seed, warm_iterations, init.parameters)
        # the guard: finite, not much worse than init per point, not collapsed to a constant
        warm = bool(np.isfinite(final) and final <= init.loss + WARM_LOSS_SLACK)
        warm = warm and snr >= COLLAPSE_SNR
    if not warm:
        best = None
        for r in range(cfg.restarts):
            s = _restart_seed(seed, r)
            p_r, f_r, _ = train(train_x, train_y, cfg, s, iterations, None)
            l_r = loo_score(train_x, train_y, cfg, p_r) if cfg.restarts > 1 else float("nan")
            key = -l_r if cfg.select == "loo" else f_r
            key = key if np.isfinite(key) else np.inf
            if best is None or key < best[0]:
                best = (key, p_r, f_r, s, l_r)
        _, params, final, used_seed, loo = best
    if not np.isfinite(final):
        raise ModelError(f"DKL fit diverged (loss {final}); lower lr or use more data.")
    if not np.isfinite(loo):
        loo = loo_score(train_x, train_y, cfg, params)
    return DKLState(
        F=F,
        y=y,
        parameters=params,
        x_mean=x_mean,
        x_std=x_std,
        y_mean=y_mean,
        y_std=y_std,
        latent_dim=int(cfg.latent_dim),
        loss=final,
        seconds=time.perf_counter() - t0,
        seed=used_seed,
        iterations=int(warm_iterations if warm else iterations),
        warm=warm,
        config=cfg,
        loo=loo,
    )


def _load_extractor(state: DKLState) -> torch.nn.Sequential:
    net = build_extractor(state.F.shape[1], state.config)
    prefix = "feature_extractor."
    net.load_state_dict(
        {
            k[len(prefix) :]: torch.as_tensor(v)
            for k, v in state.parameters.items()
            if k.startswith(prefix)
        }
    )
    return net.eval()


def embed(
    state: DKLState,
    F: np.ndarray | PatchGrid,
    *,
    batch_size: int = 16384,
    dtype: torch.dtype = DTYPE,
) -> np.ndarray:
    """The latent embedding ``g(F)`` of any features (the picture scientists look at).

    Args:
        state: A fitted DKL.
        F: Features, ``m x p`` (same columns as the training features), or a
            :class:`~coscope.models.patches.PatchGrid` whose rows are built block by block.
        batch_size: Rows per MLP pass (memory ``O(batch_size * (p + 64))``; whole image
            rows for a ``PatchGrid``).
        dtype: ``torch.float64`` (default: the training precision) or ``torch.float32``
            for large candidate sets (~2.5x faster; the input standardisation is folded
            into the first layer; latents agree with float64 to ~1e-6 relative).

    Returns:
        ``m x latent_dim`` float64.
    """
    p = state.F.shape[1]
    if isinstance(F, PatchGrid):
        blocks = (rows for _, rows in F.blocks(batch_size))
        shape = F.shape
    else:
        F = np.asarray(F, dtype=np.float64)
        blocks = (F[i : i + batch_size] for i in range(0, F.shape[0], batch_size))
        shape = F.shape
    if len(shape) != 2 or shape[1] != p:
        raise ModelError(
            f"Features must have shape (m, {p}) like the training features; got {shape}."
        )
    net = _load_extractor(state)
    out = []
    with torch.no_grad():
        first = first_linear(net)
        fold = dtype != DTYPE and first is not None
        if fold:  # fold (x - mean) / std into the first layer, then cast
            weight = first.weight / torch.as_tensor(state.x_std, dtype=DTYPE)
            first.bias -= weight @ torch.as_tensor(state.x_mean, dtype=DTYPE)
            first.weight.copy_(weight)
        net = net.to(dtype)
        for rows in blocks:
            if fold:
                xb = torch.as_tensor(rows, dtype=dtype)
            else:
                xb = torch.as_tensor((rows - state.x_mean) / state.x_std, dtype=dtype)
            out.append(net(xb).to(DTYPE).numpy())
    return np.concatenate(out) if out else np.empty((0, state.latent_dim))


def load_latent_model(state: DKLState) -> SingleTaskGP:
    """The fitted GP on the latent plane, as a botorch model in ``y`` units (eval mode).

    Its inputs are latent points (rows of :func:`embed`); its posterior at ``embed(F)``
    equals the DKL posterior at ``F``. botorch acquisition functions take it as it is.
    """
    Z = torch.as_tensor(embed(state, state.F), dtype=DTYPE)
    Y = torch.as_tensor(state.y, dtype=DTYPE).unsqueeze(-1)
    mean, kernel, likelihood = gp_parts(state.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input-range checks: latent points are not in [0, 1]
        model = SingleTaskGP(
            Z,
            Y,
            likelihood=likelihood,
            covar_module=kernel,
            mean_module=mean,
            outcome_transform=Standardize(m=1, min_stdv=_min_stdv(state.y_std)),
        )
    gp_params = {
        k: torch.as_tensor(v)
        for k, v in state.parameters.items()
        if not k.startswith("feature_extractor.")
    }
    model.load_state_dict(gp_params, strict=False)
    model.eval()
    return model


def predict_dkl(
    state: DKLState, F_cand: np.ndarray, *, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of the latent target, in ``y`` units.

    Streamed in batches (``fast_pred_var``), memory ``O(batch_size * n)``.

    Args:
        state: A fitted DKL.
        F_cand: Candidate features, ``m x p``.
        batch_size: Candidates per batch.

    Returns:
        ``(mean, std)``, each ``(m,)`` float64.
    """
    model = load_latent_model(state)
    return gp_predict(model, embed(state, F_cand), batch_size=batch_size)
