"""Training a DKL: the jointly trained model, Adam on the exact MLL, and the LOO score.

Kept apart from :mod:`coscope.models.dkl` (the state, embedding and loading) so each stays
small. Everything here works in the standardised units of the fit.

* :func:`train` builds the model from a :class:`~coscope.models.dkl_config.DKLConfig`
  (seeded inside ``torch.random.fork_rng``, so the caller's global generator is untouched),
  optionally loads ``init`` parameters (a warm start), and runs Adam with two parameter
  groups: the network at ``lr``, the GP hyperparameters (constant mean, outputscale,
  lengthscales, noise) at ``lr_gp``.
* :func:`loo_score`: the closed-form leave-one-out log predictive density of the latent GP
  (``r_i = [K^-1 (y - c)]_i / [K^-1]_ii``, ``var_i = 1 / [K^-1]_ii``), mean over points —
  how the restarts of :func:`coscope.models.fit_dkl` are compared with ``select="loo"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import gpytorch
import numpy as np
import torch
from gpytorch.constraints import GreaterThan
from gpytorch.mlls import ExactMarginalLogLikelihood

from coscope.models.dkl_config import DKLConfig
from coscope.models.dkl_nets import build_extractor

DTYPE = torch.float64
WARM_LOSS_SLACK = 0.25
"""Nats per point a warm fit's loss may exceed its ``init``'s before it is redone cold."""
COLLAPSE_SNR = 0.05
"""Outputscale / noise (standardised units) below which a warm fit counts as collapsed."""


def gp_parts(cfg: DKLConfig):
    """Constant mean, ``ScaleKernel(ARD RBF)`` and Gaussian likelihood of ``cfg`` (float64)."""
    mean = gpytorch.means.ConstantMean()
    kernel = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=cfg.latent_dim))
    likelihood = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=GreaterThan(cfg.noise_floor)
    )
    return mean.to(DTYPE), kernel.to(DTYPE), likelihood.to(DTYPE)


class DKLNet(gpytorch.models.ExactGP):
    """The jointly trained model ``f(x) = GP(g(x))`` (used only while fitting)."""

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, cfg: DKLConfig) -> None:
        mean, kernel, likelihood = gp_parts(cfg)
        super().__init__(train_x, train_y, likelihood)
        self.feature_extractor = build_extractor(train_x.shape[-1], cfg)
        self.mean_module = mean
        self.covar_module = kernel
        likelihood.noise = torch.tensor(cfg.noise_init, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        z = self.feature_extractor(x)
        return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))


def train(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    cfg: DKLConfig,
    seed: int,
    iterations: int,
    init: Mapping[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray], float, float]:
    """Adam on the exact MLL from a seeded initialisation or ``init`` parameters.

    Args:
        train_x: Standardised features, ``n x p`` float64.
        train_y: Standardised targets, ``(n,)`` float64.
        cfg: The network, GP and training choices.
        seed: Seed of the initialisation.
        iterations: Adam steps.
        init: A state's parameters to start from (warm start), or ``None``.

    Returns:
        ``(parameters, loss per point, outputscale / noise)``, standardised units.
    """
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", gpytorch.utils.warnings.NumericalWarning)
        torch.manual_seed(int(seed))
        model = DKLNet(train_x, train_y, cfg)
        if init is not None:
            model.load_state_dict({k: torch.as_tensor(v) for k, v in init.items()})
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        net = list(model.feature_extractor.parameters())
        ids = {id(p) for p in net}
        gp = [p for p in model.parameters() if id(p) not in ids]
        optimizer = torch.optim.Adam(
            [{"params": net, "lr": float(cfg.lr)}, {"params": gp, "lr": float(cfg.lr_gp)}]
        )
        model.train()
        for _ in range(int(iterations)):
            optimizer.zero_grad()
            loss = -mll(model(train_x), train_y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            final = -float(mll(model(train_x), train_y))
            noise = float(model.likelihood.noise.reshape(-1)[0])
            snr = float(model.covar_module.outputscale) / noise
    params = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return params, final, snr


def loo_score(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    cfg: DKLConfig,
    params: Mapping[str, np.ndarray],
) -> float:
    """Leave-one-out log predictive density per point of the fitted latent GP (nats).

    Args:
        train_x: Standardised features, ``n x p``.
        train_y: Standardised targets, ``(n,)``.
        cfg: The config the parameters belong to.
        params: The fitted model's parameters.

    Returns:
        Mean over points of ``log N(y_i | mu_{-i}, var_{-i})``; ``-inf`` if not computable.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = DKLNet(train_x, train_y, cfg)  # its random initialisation is overwritten
        model.load_state_dict({k: torch.as_tensor(v) for k, v in params.items()})
        z = model.feature_extractor(train_x)
        K = model.covar_module(z).to_dense()
        noise = model.likelihood.noise.reshape(-1)[0]
        A = K + noise * torch.eye(K.shape[0], dtype=DTYPE)
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            return float("-inf")
        inv = torch.cholesky_inverse(L)
        resid = train_y - model.mean_module.constant
        d = torch.diagonal(inv)
        r = (inv @ resid) / d
        var = 1.0 / d
        lpd = -0.5 * (torch.log(2 * math.pi * var) + r.square() / var)
    return float(lpd.mean())
