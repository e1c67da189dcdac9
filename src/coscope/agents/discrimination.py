"""Discriminating acquisition: where would a measurement tell the hypotheses apart?

``K`` hypotheses with probabilities ``p_k`` each predict the next observation ``y`` at a
candidate as ``N(mu_k, s2_k)`` (``s2_k`` = latent variance + that model's noise). The
information a measurement brings about *which* hypothesis holds is the mutual information
between ``y`` and the model index, ``I(y; M) = H[sum_k p_k N(mu_k, s2_k)] - sum_k p_k
H[N(mu_k, s2_k)]``. The entropy of the Gaussian mixture has no closed form; it is bounded
above by that of the moment-matched Gaussian (variance ``V = sum_k p_k (s2_k + (mu_k -
mu_bar)^2)``), as in Bayesian active model selection (Gardner et al. 2015):

    I(y; M) ~= 1/2 log V - sum_k p_k 1/2 log s2_k      (nats, >= 0)

It is large where the hypotheses' means differ by more than their uncertainty. Once one
hypothesis holds almost all the probability it vanishes everywhere; what a measurement
still teaches is then about the map under the hypotheses, ``I(y; f | M) = sum_k p_k 1/2
log(s2_k / noise_k)``. The score adds the two, the second weighted by ``explore``:
``explore = 1`` is the whole information ``I(y; M, f)`` a measurement carries about the
hypothesis and its map; ``explore = 0`` only discriminates.
"""

from __future__ import annotations

import numpy as np


def discrimination_scores(
    means: np.ndarray,
    variances: np.ndarray,
    noise: np.ndarray,
    probs: np.ndarray,
    *,
    explore: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``m`` candidates under ``K`` hypotheses (module docstring), nats.

    Args:
        means: Predictive means of the latent target, ``K x m``, target units.
        variances: Latent predictive variances, ``K x m``, target units squared.
        noise: Observation noise variance of each hypothesis, ``(K,)``, target units squared.
        probs: Hypothesis probabilities, ``(K,)``, summing to 1.
        explore: Weight of the map information ``I(y; f | M)`` (``>= 0``).

    Returns:
        ``(score, mi)``: the score ``I(y; M) + explore * I(y; f | M)`` and ``I(y; M)`` alone,
        each ``(m,)`` float64.
    """
    means = np.asarray(means, dtype=np.float64)
    noise = np.maximum(np.asarray(noise, dtype=np.float64).reshape(-1, 1), 1e-12)
    s2 = np.maximum(np.asarray(variances, dtype=np.float64), 0.0) + noise
    p = np.asarray(probs, dtype=np.float64).reshape(-1, 1)
    mu_bar = (p * means).sum(axis=0)
    mixture = (p * (s2 + (means - mu_bar) ** 2)).sum(axis=0)
    own = (p * 0.5 * np.log(s2)).sum(axis=0)
    mi = np.maximum(0.5 * np.log(mixture) - own, 0.0)
    about_map = (p * 0.5 * np.log(s2 / noise)).sum(axis=0)
    return mi + float(explore) * about_map, mi


def mixture_moments(
    means: np.ndarray, variances: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``(m,)`` of the probability-weighted mixture of ``K`` latent predictions
    (``K x m`` means and variances, target units): the Bayesian-model-averaged map."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1, 1)
    means = np.asarray(means, dtype=np.float64)
    mean = (p * means).sum(axis=0)
    var = (p * (np.maximum(variances, 0.0) + (means - mean) ** 2)).sum(axis=0)
    return mean, np.sqrt(var)
