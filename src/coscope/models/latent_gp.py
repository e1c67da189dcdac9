"""Fast exact moments of a DKL's latent GP: a cached factor, batched, as a botorch model.

The DKL posterior at features ``F`` is an exact GP posterior at the latent points
``Z = g(F)`` (:mod:`coscope.models.dkl`). Scoring ``m`` candidates through botorch's
``SingleTaskGP`` re-derives the predictive caches per batch and goes through LOVE
(``fast_pred_var``); here the factor is computed once per model version and every batch
costs one kernel block and one matrix product:

* ``A = K(Z, Z) + noise I = L L^T`` (Cholesky, ``n x n``), ``alpha = A^{-1} (y_s - c)`` and
  ``L^{-1}`` (dense, ``n x n``, so the variance is a GEMM instead of a triangular solve);
* for candidates ``X`` (``b x d``): ``k = K(X, Z)``, ``mean_s = c + k alpha``,
  ``var_s = s - rowsum((k L^{-T})^2)`` — *exact* (not LOVE), ``O(b n^2)`` flops, memory
  ``O(b n)`` per batch.

Everything is in the standardised units of the fit (ARD RBF with outputscale ``s``,
constant mean ``c``) and mapped back to ``y`` units through the ``Standardize`` constants
of the fitted model, so the moments equal the ``SingleTaskGP``'s exact posterior to
float64 rounding (tested). :class:`LatentGP` is a botorch ``Model`` for ``q = 1`` batches:
botorch's analytic acquisition functions (the registered policies) and
:func:`coscope.models.gp.predict` take it unchanged, and
:meth:`LatentGP.condition_on_observations` adds kriging-believer points (``n + b``
Cholesky, cheap at ``n <= 500``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model

from coscope.errors import ModelError

DTYPE = torch.float64


@dataclass(frozen=True)
class Moments:
    """Posterior moments of ``b`` candidates, shaped like botorch's ``(b, 1, 1)``."""

    mean: torch.Tensor
    variance: torch.Tensor


class LatentGP(Model):
    """Exact posterior of a fitted latent GP with a cached factor (eval only, ``q = 1``).

    Args:
        Z: Training latent points, ``n x d`` float64.
        y_s: Training targets in standardised units, ``(n,)``.
        lengthscale: ARD lengthscales, ``(d,)``.
        outputscale: Signal variance ``s`` (standardised units).
        noise: Noise variance (standardised units).
        constant: Constant mean ``c`` (standardised units).
        y_mean: Offset of the standardisation (``y`` units).
        y_std: Scale of the standardisation (``y`` units).
    """

    num_outputs = 1
    _num_outputs = 1

    def __init__(
        self,
        Z: torch.Tensor,
        y_s: torch.Tensor,
        *,
        lengthscale: torch.Tensor,
        outputscale: float,
        noise: float,
        constant: float,
        y_mean: float,
        y_std: float,
    ) -> None:
        super().__init__()
        self.Z = Z.to(DTYPE)
        self.y_s = y_s.to(DTYPE).reshape(-1)
        self.lengthscale = lengthscale.to(DTYPE).reshape(-1)
        self.outputscale, self.noise, self.constant = outputscale, noise, constant
        self.y_mean, self.y_std = y_mean, y_std
        A = self._kernel(self.Z, self.Z) + noise * torch.eye(self.Z.shape[0], dtype=DTYPE)
        L, info = torch.linalg.cholesky_ex(A)
        jitter = 1e-10 * outputscale
        while int(info) != 0:  # pragma: no cover - noise >= 1e-4 keeps A well conditioned
            if jitter > 1e-2 * outputscale:
                raise ModelError("Latent GP covariance is not positive definite; refit.")
            L, info = torch.linalg.cholesky_ex(A + jitter * torch.eye(A.shape[0], dtype=DTYPE))
            jitter *= 10
        eye = torch.eye(A.shape[0], dtype=DTYPE)
        self.L_inv_T = torch.linalg.solve_triangular(L, eye, upper=False).T.contiguous()
        self.alpha = self.L_inv_T @ (self.L_inv_T.T @ (self.y_s - constant))

    @classmethod
    def from_model(cls, model: SingleTaskGP) -> LatentGP:
        """The same posterior as a fitted latent ``SingleTaskGP`` (ARD RBF in a ScaleKernel)."""
        transform = model.outcome_transform
        return cls(
            model.train_inputs[0].detach(),
            model.train_targets.detach(),
            lengthscale=model.covar_module.base_kernel.lengthscale.detach(),
            outputscale=float(model.covar_module.outputscale.detach()),
            noise=float(model.likelihood.noise.detach().reshape(-1)[0]),
            constant=float(model.mean_module.constant.detach()),
            y_mean=float(transform.means.reshape(-1)[0]),
            y_std=float(transform.stdvs.reshape(-1)[0]),
        )

    @property
    def batch_shape(self) -> torch.Size:
        """No model batch (botorch's acquisition functions check it)."""
        return torch.Size([])

    def _kernel(self, X: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(X / self.lengthscale, Z / self.lengthscale).square()
        return self.outputscale * torch.exp(-0.5 * d2)

    def moments(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the latent target at ``X`` (``b x d``), ``y`` units, ``(b,)``."""
        k = self._kernel(X.to(DTYPE), self.Z)
        mean_s = self.constant + k @ self.alpha
        var_s = (self.outputscale - (k @ self.L_inv_T).square().sum(-1)).clamp_min(0.0)
        return self.y_mean + self.y_std * mean_s, self.y_std**2 * var_s

    def posterior(self, X: torch.Tensor, posterior_transform=None, **kwargs) -> Moments:
        """Marginal moments at ``X`` of shape ``(..., 1, d)`` (one point per batch)."""
        if posterior_transform is not None or X.shape[-2] != 1:
            raise ModelError("LatentGP gives marginal moments of q = 1 batches only.")
        mean, var = self.moments(X.reshape(-1, X.shape[-1]))
        shape = (*X.shape[:-1], 1)
        return Moments(mean.reshape(shape), var.reshape(shape))

    def condition_on_observations(self, X: torch.Tensor, Y: torch.Tensor, **kwargs) -> LatentGP:
        """A new model with ``(X, Y)`` (``b x d``, ``b x 1``, ``y`` units) added to the data."""
        y_s = (Y.reshape(-1).to(DTYPE) - self.y_mean) / self.y_std
        return LatentGP(
            torch.cat([self.Z, X.reshape(-1, self.Z.shape[1]).to(DTYPE)]),
            torch.cat([self.y_s, y_s]),
            lengthscale=self.lengthscale,
            outputscale=self.outputscale,
            noise=self.noise,
            constant=self.constant,
            y_mean=self.y_mean,
            y_std=self.y_std,
        )
