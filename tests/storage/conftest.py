"""Shared helpers for the experimental-trace tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coscope.storage import TraceStore
from coscope.types import Location, Measurement, ModalityInfo, Proposal

SAMPLE_SHAPE = (8, 9)


def make_modalities() -> dict[str, ModalityInfo]:
    """Two modalities of different lengths (one with a ':' in its name)."""
    return {
        "beps_loop": ModalityInfo("beps_loop", np.linspace(-10.0, 10.0, 64), "voltage", "V"),
        "theory:lgd": ModalityInfo("theory:lgd", np.arange(5.0), "index", "", "J/m3"),
    }


def proposal(step: int, modality: str = "beps_loop") -> Proposal:
    """A deterministic decision for ``step``."""
    return Proposal(
        step=step,
        instrument=f"inst-{modality}",
        modality=modality,
        location=Location(step % SAMPLE_SHAPE[0], (3 * step) % SAMPLE_SHAPE[1]),
        policy="ei" if step % 2 else "random",
        score=0.5 * step if step % 3 else float("nan"),
        expected_cost=1.0 + step,
        model_version=step // 2,
        predicted_mean=-0.25 * step,
        predicted_std=0.1,
        t_decided=1.7e9 + step,
    )


def signal_for(step: int, length: int) -> np.ndarray:
    """A deterministic finite signal ``(length,)`` for ``step``."""
    return np.random.default_rng(step).normal(size=length)


def measurement(p: Proposal, length: int) -> Measurement:
    """The measurement answering ``p``, with a deterministic signal ``(length,)``."""
    return Measurement(
        step=p.step,
        instrument=p.instrument,
        modality=p.modality,
        location=p.location,
        signal=signal_for(p.step, length),
        cost=2.0 * p.step,
        t_start=1.7e9 + p.step + 0.1,
        t_end=1.7e9 + p.step + 0.9,
    )


def create(path: Path) -> TraceStore:
    """A new trace at ``path`` with :func:`make_modalities`."""
    return TraceStore.create(
        path,
        campaign={"name": "test", "seed": 7, "spec": {"budget": 10.0, "tags": ["a", "b"]}},
        modalities=make_modalities(),
        sample_shape=SAMPLE_SHAPE,
    )


@pytest.fixture
def store(tmp_path: Path):
    """A new trace open for appending; closed after the test."""
    s = create(tmp_path / "trace.zarr")
    yield s
    s.close()
