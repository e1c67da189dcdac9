"""BOARS-style voting: the scientist rates measured spectra; the reward is similarity to a target.

Every spectrum ``s`` (shape ``(L,)``) is first normalised to zero mean and unit length,
``ŝ = (s - mean(s)) / ||s - mean(s)||`` (a flat spectrum maps to zeros). With votes
``(step_i, w_i)``, ``w_i`` in ``[-1, 1]`` (good = +1, bad = -1), the target is

    t = Σ_i w_i ŝ_i / ||Σ_i w_i ŝ_i||

— the vote-weighted mean of the voted spectra, pointing towards the good ones and away from
the bad ones — and the reward of a spectrum is the cosine similarity ``r(s) = ŝ · t`` in
``[-1, 1]``. The target changes with every vote, so the agent's observations are
re-scalarized from the full signals in the trace when a vote arrives. When the votes cancel
(``||Σ w_i ŝ_i|| < 1e-9``) the target is undefined and the reward is 0 everywhere.

:class:`ScriptedVoter` stands in for the human in tests and demos: a deterministic rule on a
physical property of the spectrum (a registered scalarizer) decides good or bad.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from coscope.scalarizers import scalarize


def normalise(signal: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-length copy of ``signal`` ``(L,)`` (zeros when flat)."""
    centred = np.asarray(signal, dtype=np.float64) - float(np.mean(signal))
    norm = float(np.linalg.norm(centred))
    return centred / norm if norm > 1e-12 else np.zeros_like(centred)


def vote_target(
    votes: Sequence[tuple[int, float]], signals: Mapping[int, np.ndarray]
) -> np.ndarray | None:
    """Unit-length target spectrum ``(L,)`` from ``(step, weight)`` votes; None if they cancel.

    Args:
        votes: ``(step, weight)`` pairs; each step must be a key of ``signals``.
        signals: Step -> full signal ``(L,)`` of the voted measurements.
    """
    if not votes:
        return None
    total = np.sum([float(w) * normalise(signals[int(step)]) for step, w in votes], axis=0)
    norm = float(np.linalg.norm(total))
    return total / norm if norm > 1e-9 else None


def similarity_reward(target: np.ndarray | None) -> Callable[[np.ndarray], float]:
    """``signal -> ŝ · t`` (cosine similarity to the target, in [-1, 1]); 0 when no target."""
    if target is None:
        return lambda signal: 0.0
    t = np.asarray(target, dtype=np.float64)
    return lambda signal: float(normalise(signal) @ t)


def similarity_map(truth: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """Reward of every ground-truth signal ``truth`` ``(H, W, L)`` -> ``(H, W)``."""
    H, W, L = truth.shape
    flat = truth.reshape(H * W, L).astype(np.float64)
    if target is None:
        return np.zeros((H, W))
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 1e-12)
    return (unit @ target).reshape(H, W)


@dataclass
class ScriptedVoter:
    """A deterministic stand-in for the scientist.

    Votes ``good`` on a spectrum whose property (registered scalarizer ``prop``) is at least
    ``threshold`` and ``bad`` otherwise, on every ``every``-th measured step it sees.

    Attributes:
        prop: Scalarizer name of the physical property, e.g. ``"loop_height"``.
        threshold: Property value separating good from bad.
        every: Rate one measurement in this many.
        params: The scalarizer's parameters.
    """

    prop: str = "loop_height"
    threshold: float = 0.0
    every: int = 3
    params: dict[str, float] = field(default_factory=dict)

    def vote(self, step: int, signal: np.ndarray, axis: np.ndarray) -> dict | None:
        """The vote payload for measured ``step`` (``{step, label}``) or None to abstain."""
        if step % self.every:
            return None
        value = scalarize(self.prop, signal, axis, self.params)
        return {"step": int(step), "label": "good" if value >= self.threshold else "bad"}
