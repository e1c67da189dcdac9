"""The held-out DKL case of issue 18 and the plain gpytorch reference loop (not in the package).

Case (``beps_case``): ``BEPS_PTO_50x50.h5``; structure image = the remanent response near
0 V (the ``remanent`` scalarizer of every loop, as ``coscope dataset import`` derives it,
docs/datasets.md); target = ``loop_height`` of every loop. Candidates: the pixels whose
``16 x 16`` patch fits inside the image (rows/cols 8..42: 35 x 35 = 1,225), features = the
patch of the image min-max scaled to [0, 1] (256 numbers). Map error = √MSE of the
predicted mean over all 1,225 candidates with the target min-max scaled to [0, 1] (a
constant predictor scores the std of that map).

Reference (``reference_step``), as the issue describes it: ReLU MLP 256→64→64→2 on the raw
patch, exact GP with ``ScaleKernel(RBFKernel())`` on the 2-D latent, float64, Gaussian noise
>= 1e-4, targets standardised, rebuilt from scratch every step with 100 Adam iterations
(lr 0.01 network, 0.05 GP), next point = argmax of mean + 2 sd over unmeasured candidates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

BEPS = "/work/shared/datasets/dtmicroscope-afm/BEPS_PTO_50x50.h5"


def scalar_maps(path: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-pixel scalarizer maps of a BEPS file, ``{name: H x W}``."""
    import h5py

    from coscope.scalarizers import scalarize

    with h5py.File(path, "r") as f:
        loops = f["Channel_000/generic/generic"][()]
        voltage = f["Channel_000/generic/Voltage"][()]
    H, W, _ = loops.shape
    return {
        n: np.array([[scalarize(n, loops[r, c], voltage) for c in range(W)] for r in range(H)])
        for n in names
    }


def unit(a: np.ndarray) -> np.ndarray:
    """``a`` min-max scaled to [0, 1] (zeros when constant)."""
    a = np.asarray(a, dtype=np.float64)
    span = float(a.max() - a.min())
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def valid_patches(image: np.ndarray, window: int) -> np.ndarray:
    """Patches that fit inside ``image`` (``H x W``): ``(H-w+1)(W-w+1) x w*w``, row-major."""
    from numpy.lib.stride_tricks import sliding_window_view

    v = sliding_window_view(np.asarray(image, dtype=np.float64), (window, window))
    return np.ascontiguousarray(v).reshape(-1, window * window)


@lru_cache(maxsize=4)
def beps_case(window: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features m x w*w, truth (Hc, Wc) in [0, 1], structure (50, 50))`` of the case."""
    maps = scalar_maps(BEPS, ("remanent", "loop_height"))
    structure = maps["remanent"]
    half = window // 2
    Hc = structure.shape[0] - window + 1
    truth = maps["loop_height"][half : half + Hc, half : half + Hc]
    return valid_patches(unit(structure), window), unit(truth), structure


def reference_fit_predict(
    F: np.ndarray,
    train: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    dtype=None,
    iterations: int = 100,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The plain reference DKL fitted on ``F[train], y``; mean, sd at every row of ``F`` and
    the final GP noise as a fraction of the (standardised) data variance."""
    import gpytorch
    import torch

    dtype = dtype or torch.float64
    torch.manual_seed(int(seed))
    X = torch.as_tensor(F, dtype=dtype)
    ym, ys = float(y.mean()), float(y.std()) or 1.0
    Y = torch.as_tensor((y - ym) / ys, dtype=dtype)

    class Net(gpytorch.models.ExactGP):
        def __init__(self, x, t, lik):
            super().__init__(x, t, lik)
            self.fe = torch.nn.Sequential(
                torch.nn.Linear(x.shape[1], 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 64),
                torch.nn.ReLU(),
                torch.nn.Linear(64, 2),
            )
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

        def forward(self, x):
            z = self.fe(x)
            return gpytorch.distributions.MultivariateNormal(
                self.mean_module(z), self.covar_module(z)
            )

    lik = gpytorch.likelihoods.GaussianLikelihood(
        noise_constraint=gpytorch.constraints.GreaterThan(1e-4)
    )
    model = Net(X[train], Y, lik).to(dtype)
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    opt = torch.optim.Adam(
        [
            {"params": model.fe.parameters(), "lr": 0.01},
            {"params": model.covar_module.parameters(), "lr": 0.05},
            {"params": model.mean_module.parameters(), "lr": 0.05},
            {"params": lik.parameters(), "lr": 0.05},
        ]
    )
    model.train()
    for _ in range(iterations):
        opt.zero_grad()
        loss = -mll(model(X[train]), Y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad(), gpytorch.settings.fast_pred_var():
        post = model(X)
        mean = post.mean.double().numpy() * ys + ym
        sd = post.variance.clamp_min(0).sqrt().double().numpy() * ys
    return mean, sd, float(lik.noise.detach())


def reference_campaign(
    F: np.ndarray, truth: np.ndarray, initial: np.ndarray, budget: int, seed: int, marks, score
) -> dict:
    """The reference loop: ``initial`` indices, then argmax mean + 2 sd, up to ``budget``.

    ``score(mean, sd, measured) -> dict`` is called at every count in ``marks``.
    """
    import time

    flat = truth.ravel()
    measured = list(int(i) for i in initial)
    out: dict = {"rows": {}, "decide_s": []}
    while len(measured) < budget:
        t = time.perf_counter()
        idx = np.array(measured)
        mean, sd, _ = reference_fit_predict(F, idx, flat[idx], seed + len(measured))
        ucb = mean + 2.0 * sd
        ucb[idx] = -np.inf
        out["decide_s"].append(time.perf_counter() - t)
        if len(measured) in marks:
            out["rows"][len(measured)] = score(mean, sd, idx)
        measured.append(int(np.argmax(ucb)))
    idx = np.array(measured)
    if len(measured) in marks:
        mean, sd, _ = reference_fit_predict(F, idx, flat[idx], seed + len(measured))
        out["rows"][len(measured)] = score(mean, sd, idx)
    out["measured"] = measured
    return out
