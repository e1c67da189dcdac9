"""How a DKL is built and trained: one frozen, torch-free record of every choice.

Kept free of torch so that the campaign spec (:mod:`coscope.config`) can validate DKL
options without importing it. :func:`coscope.models.fit_dkl` takes a :class:`DKLConfig`
(``config=``); the fitted :class:`~coscope.models.DKLState` carries it, so a state rebuilds
its own network.

Defaults (and why; evidence in ``docs/dkl.md``):
    * ``extractor="mlp"``, ``hidden=(64, 64)``, ``activation="relu"``: the field's reference
      network (256→64→64→2); ReLU mapped better than tanh in every pair tried (held-out
      BEPS case, synthetic walls).
    * ``lr=0.01`` for the network, ``lr_gp=0.05`` for the GP hyperparameters: with one rate
      of 0.01, 100 Adam steps cannot move the GP noise far from its initial value (0.69 of
      the standardised variance), so every fit ended with the noise near 30 % of the data's
      variance on noise-free data — a map smoothed towards its mean.
    * ``noise_init=0.6931`` (gpytorch's own start, ``softplus(0)``), learnt at ``lr_gp``:
      starting from a small noise (0.05) let the network interpolate early and mapped
      worse on every case tried (BEPS, synthetic walls).
    * ``inputs="global"``: inputs standardised with one mean and std over all columns
      (keeps the relative contrast of a patch; per-column standardisation, the old default,
      inflates near-constant pixels of a patch to unit variance).
    * ``restarts=1``: a single fit; ``restarts=k`` fits ``k`` seeds and keeps the best by
      ``select`` (``"mll"``: exact marginal likelihood; ``"loo"``: leave-one-out predictive
      log likelihood of the latent GP, closed form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from coscope.errors import ConfigError

Extractor = Literal["mlp", "cnn"]
Activation = Literal["relu", "tanh"]
Inputs = Literal["global", "column", "none"]
Select = Literal["mll", "loo"]


@dataclass(frozen=True)
class DKLConfig:
    """Network, GP and training choices of a DKL fit (plain data; crosses Dask).

    Attributes:
        latent_dim: Dimension of the latent embedding the GP sees (>= 1).
        extractor: ``"mlp"`` on the flattened features, or ``"cnn"`` on patches (features
            must be ``channels x w x w`` patches flattened channel, row, column).
        hidden: Widths of the hidden layers of the MLP (the CNN's dense head uses the last).
        activation: Nonlinearity of the hidden layers.
        channels: Image channels of a patch (``"cnn"`` only).
        lr: Adam learning rate of the network weights.
        lr_gp: Adam learning rate of the GP hyperparameters (mean, kernel, noise).
        noise_init: Initial noise variance, standardised units (> ``noise_floor``).
        noise_floor: Lower bound of the noise variance, standardised units.
        inputs: Input standardisation: one mean/std over all columns, per column, or none.
        restarts: Cold fits with different seeds; the best by ``select`` is kept.
        select: Restart choice: marginal likelihood or leave-one-out likelihood.
    """

    latent_dim: int = 2
    extractor: Extractor = "mlp"
    hidden: tuple[int, ...] = field(default=(64, 64))
    activation: Activation = "relu"
    channels: int = 1
    lr: float = 0.01
    lr_gp: float = 0.05
    noise_init: float = 0.6931
    noise_floor: float = 1e-4
    inputs: Inputs = "global"
    restarts: int = 1
    select: Select = "mll"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        problems = check_dkl_options(self)
        if problems:
            raise ConfigError(f"DKL options: {problems[0]}.")

    def patch_side(self, p: int) -> int:
        """The patch side ``w`` with ``p = channels * w * w`` (``"cnn"``), or raise.

        Raises:
            ConfigError: ``p`` is not ``channels`` square patches.
        """
        w = math.isqrt(max(p // self.channels, 0))
        if self.channels * w * w != p or w < 3:
            raise ConfigError(
                f"the cnn extractor needs features of {self.channels} channel(s) of square "
                f"patches of side >= 3 (p = channels * w * w); got p = {p}. Use extractor: mlp "
                "or patch features of the structure image."
            )
        return w


def check_dkl_options(cfg: DKLConfig) -> list[str]:
    """Plain-Python checks of a config; returns the problems (empty when it is valid)."""
    out = []
    if cfg.latent_dim < 1:
        out.append(f"latent_dim must be >= 1, got {cfg.latent_dim}")
    if cfg.extractor not in ("mlp", "cnn"):
        out.append(f"extractor must be mlp or cnn, got {cfg.extractor!r}")
    if cfg.activation not in ("relu", "tanh"):
        out.append(f"activation must be relu or tanh, got {cfg.activation!r}")
    if not cfg.hidden or min(cfg.hidden) < 1 or len(cfg.hidden) > 6:
        out.append(f"hidden must be 1 to 6 positive widths, got {cfg.hidden}")
    if cfg.channels < 1:
        out.append(f"channels must be >= 1, got {cfg.channels}")
    if not (0 < cfg.lr <= 1 and 0 < cfg.lr_gp <= 1):
        out.append(f"lr and lr_gp must lie in (0, 1], got {cfg.lr} and {cfg.lr_gp}")
    if not (0 < cfg.noise_floor < cfg.noise_init):
        out.append(f"need 0 < noise_floor < noise_init, got {cfg.noise_floor} and {cfg.noise_init}")
    if cfg.inputs not in ("global", "column", "none"):
        out.append(f"inputs must be global, column or none, got {cfg.inputs!r}")
    if not 1 <= cfg.restarts <= 16:
        out.append(f"restarts must lie in 1..16, got {cfg.restarts}")
    if cfg.select not in ("mll", "loo"):
        out.append(f"select must be mll or loo, got {cfg.select!r}")
    return out
