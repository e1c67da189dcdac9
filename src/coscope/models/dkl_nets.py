"""Feature extractors of a DKL: an MLP on flat features, or a small CNN on patches.

Both map ``b x p`` float64 rows to ``b x latent_dim`` latent points and are built from a
:class:`~coscope.models.dkl_config.DKLConfig` alone, so a fitted state's parameters load
into a freshly built network (names are stable: ``feature_extractor.<layer>...``).

* MLP: ``p -> hidden[0] -> … -> hidden[-1] -> latent_dim``, activation after every hidden
  layer, linear output.
* CNN: the row is reshaped to ``channels x w x w``; two 3x3 convolutions (8 and 16 maps,
  each followed by the activation and a 2x2 max-pool, the second pool adaptive to 2x2),
  then a dense layer of ``hidden[-1]`` units and the linear output. Translation-aware where
  the MLP sees 256 unrelated numbers; ~4k weights + ``64 * hidden[-1]`` for any window.
"""

from __future__ import annotations

import torch

from coscope.models.dkl_config import DKLConfig

DTYPE = torch.float64


def _act(cfg: DKLConfig) -> torch.nn.Module:
    return torch.nn.ReLU() if cfg.activation == "relu" else torch.nn.Tanh()


def _mlp(p: int, cfg: DKLConfig) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = p
    for h in cfg.hidden:
        layers += [torch.nn.Linear(width, h), _act(cfg)]
        width = h
    layers.append(torch.nn.Linear(width, cfg.latent_dim))
    return torch.nn.Sequential(*layers)


class _Patches(torch.nn.Module):
    """``b x (C*w*w)`` rows -> ``b x C x w x w`` images."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.shape = (channels, side, side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def _cnn(p: int, cfg: DKLConfig) -> torch.nn.Sequential:
    side = cfg.patch_side(p)
    return torch.nn.Sequential(
        _Patches(cfg.channels, side),
        torch.nn.Conv2d(cfg.channels, 8, 3, padding=1),
        _act(cfg),
        torch.nn.MaxPool2d(2, ceil_mode=True),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        _act(cfg),
        torch.nn.AdaptiveMaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, cfg.hidden[-1]),
        _act(cfg),
        torch.nn.Linear(cfg.hidden[-1], cfg.latent_dim),
    )


def build_extractor(p: int, cfg: DKLConfig) -> torch.nn.Sequential:
    """The feature extractor of ``cfg`` for ``p`` input columns, float64, initialised from
    torch's global generator (callers seed it inside ``fork_rng``)."""
    net = _cnn(p, cfg) if cfg.extractor == "cnn" else _mlp(p, cfg)
    return net.to(DTYPE)


def first_linear(net: torch.nn.Sequential) -> torch.nn.Linear | None:
    """The first layer when it is a dense layer on the raw inputs (MLP), else ``None``."""
    first = net[0]
    return first if isinstance(first, torch.nn.Linear) else None
