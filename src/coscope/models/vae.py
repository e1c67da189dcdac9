"""A small variational autoencoder of one modality's spectra: latents as multi-task targets.

Model: each spectrum ``s`` (``m`` channels) is standardised per channel (``(s - mu) / sd``,
``mu``, ``sd`` from the training spectra) and mapped by an MLP encoder (``m -> hidden ->
2 d``, tanh) to the mean and log-variance of a Gaussian posterior over a ``d``-dimensional
latent ``z``; an MLP decoder (``d -> hidden -> m``) maps ``z`` back. Trained by Adam on the
negative ELBO (squared reconstruction error in standard units plus ``beta`` times the KL
divergence to ``N(0, I)``), full batch, a bounded number of epochs, from a seeded start with a
seeded reparameterisation noise stream: on CPU with one torch thread the fit is a
deterministic function of (spectra, seed, options).

The state is plain data (numpy weights), so it is fitted through
:func:`coscope.models.fitting.fit_model` (kind ``"vae"``; ``X`` = spectra ``n x m``, ``y``
ignored) on any executor. :func:`encode` returns the **posterior mean** (the latent used as
a target), :func:`decode` the reconstructed spectrum in the original units, both in numpy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from coscope.errors import ModelError
from coscope.models.training import FitRecordMixin

HIDDEN = 32
"""Hidden units of the encoder and decoder MLPs."""
BETA = 0.05
"""Weight of the KL term: small, so the latents keep the spectra's structure (beta-VAE)."""
LR = 0.01
"""Adam step size."""
MIN_SPECTRA = 2
"""Fewest spectra a VAE can be fitted on."""


@dataclass(frozen=True, eq=False)
class VaeState(FitRecordMixin):
    """A fitted VAE as plain data.

    Attributes:
        weights: Layer weights and biases (``enc1_w`` ``hidden x m`` …), numpy float64.
        mean: Channel means of the training spectra, ``(m,)``.
        scale: Channel standard deviations (floored), ``(m,)``.
        latent_dim: ``d``.
        n_train: Number of training spectra.
        loss: Final negative ELBO per spectrum and channel (standard units).
        seconds: Wall time of the fit.
        seed: Seed of the fit.
    """

    weights: Mapping[str, np.ndarray] = field(repr=False)
    mean: np.ndarray
    scale: np.ndarray
    latent_dim: int
    n_train: int
    loss: float
    seconds: float
    seed: int = 0

    @property
    def n_channels(self) -> int:
        """Spectrum length ``m``."""
        return int(self.mean.shape[0])

    def named_hyperparameters(self) -> dict[str, float]:
        """``vae`` (1.0 marks a VAE row), ``latent_dim``, ``n_channels``, ``hidden``, ``beta``."""
        return {
            "vae": 1.0,
            "latent_dim": float(self.latent_dim),
            "n_channels": float(self.n_channels),
            "hidden": float(self.weights["enc1_w"].shape[0]),
            "beta": BETA,
        }


def check_spectra(spectra: np.ndarray, n_channels: int | None = None) -> np.ndarray:
    """``spectra`` as float64 ``n x m``; ModelError (one sentence) when unusable."""
    x = np.asarray(spectra, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
        raise ModelError(
            f"VAE spectra must be an array of shape (n, m) with n >= 1 and m >= 2 channels; "
            f"got shape {x.shape}."
        )
    if n_channels is not None and x.shape[1] != n_channels:
        raise ModelError(
            f"VAE was fitted on spectra of {n_channels} channels but got {x.shape[1]}; "
            "pass spectra on the same axis as the training spectra."
        )
    if not np.isfinite(x).all():
        raise ModelError("VAE spectra contain NaN or inf; drop or fix those measurements.")
    return x


def _layers(m: int, d: int, hidden: int) -> dict[str, tuple[int, int]]:
    return {"enc1": (hidden, m), "enc2": (2 * d, hidden), "dec1": (hidden, d), "dec2": (m, hidden)}


def _mlp(w: Mapping[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    h = torch.tanh(x @ w[f"{name}1_w"].T + w[f"{name}1_b"])
    return h @ w[f"{name}2_w"].T + w[f"{name}2_b"]


def fit_vae(
    X: np.ndarray,
    y: np.ndarray | None = None,
    *,
    seed: int,
    iterations: int = 400,
    latent_dim: int = 2,
    hidden: int = HIDDEN,
) -> VaeState:
    """Fit a VAE on spectra ``X`` (``n x m``, ``n >= 2``) for ``iterations`` Adam epochs.

    ``y`` is ignored (it keeps the :func:`~coscope.models.fitting.fit_model` signature).

    Raises:
        ModelError: Too few spectra, a bad shape, NaN/inf, or a latent size < 1.
    """
    del y
    x = check_spectra(X)
    if x.shape[0] < MIN_SPECTRA:
        raise ModelError(f"a VAE needs at least {MIN_SPECTRA} spectra, got {x.shape[0]}.")
    if int(latent_dim) < 1 or int(hidden) < 1:
        raise ModelError(f"VAE latent_dim and hidden must be >= 1, got {latent_dim}, {hidden}.")
    d, m = int(latent_dim), x.shape[1]
    start = time.perf_counter()
    mean = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-3 * max(float(x.std()), 1e-12))
    data = torch.as_tensor((x - mean) / scale, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    params: dict[str, torch.Tensor] = {}
    for name, (n_out, n_in) in _layers(m, d, int(hidden)).items():
        bound = 1.0 / np.sqrt(n_in)
        w = (torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        params[f"{name}_w"] = w.requires_grad_()
        params[f"{name}_b"] = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam(list(params.values()), lr=LR)
    loss_value = float("nan")
    for _ in range(int(iterations)):
        opt.zero_grad()
        stats = _mlp(params, "enc", data)
        mu, logvar = stats[:, :d], stats[:, d:].clamp(-8.0, 8.0)
        eps = torch.randn(mu.shape, generator=gen, dtype=torch.float64)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = ((_mlp(params, "dec", z) - data) ** 2).sum(1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        loss = (recon + BETA * kl).mean() / m
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    weights = {k: v.detach().numpy().copy() for k, v in params.items()}
    return VaeState(
        weights=weights,
        mean=mean,
        scale=scale,
        latent_dim=d,
        n_train=int(x.shape[0]),
        loss=loss_value,
        seconds=time.perf_counter() - start,
        seed=int(seed),
    )


def _np_mlp(w: Mapping[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    h = np.tanh(x @ w[f"{name}1_w"].T + w[f"{name}1_b"])
    return h @ w[f"{name}2_w"].T + w[f"{name}2_b"]


def encode(state: VaeState, spectra: np.ndarray) -> np.ndarray:
    """Posterior-mean latents of ``spectra`` (``n x m`` or ``(m,)``) -> ``n x d``."""
    x = check_spectra(spectra, state.n_channels)
    return _np_mlp(state.weights, "enc", (x - state.mean) / state.scale)[:, : state.latent_dim]


def decode(state: VaeState, latents: np.ndarray) -> np.ndarray:
    """Reconstructed spectra (original units) of latents ``n x d`` -> ``n x m``."""
    z = np.asarray(latents, dtype=np.float64).reshape(-1, state.latent_dim)
    return _np_mlp(state.weights, "dec", z) * state.scale + state.mean
