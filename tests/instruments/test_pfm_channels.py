"""Co-registered channels of a real PFM image as modalities of different cost (real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DATASETS

from coscope.storage.dataset_readers import import_dataset

PFM = DATASETS / "dtmicroscope-afm" / "PTO_Funakubo0001.h5"


def pfm_channels_spec(dataset: Path, run_dir: Path, budget: int) -> dict:
    """Amplitude (cost 5, the target) and phase (cost 1) measured; height known up front."""
    return {
        "name": "pfm-channels",
        "seed": 0,
        "sample": {
            "kind": "dataset",
            "params": {"path": str(dataset), "structure": "HeightRetrace"},
        },
        "instruments": [
            {
                "name": "afm",
                "modalities": ["AmplitudeRetrace", "PhaseRetrace"],
                "cost": {"AmplitudeRetrace": 5.0, "PhaseRetrace": 1.0},
                "latency_s": 0.0,
                "noise": 0.0,
            }
        ],
        "scalarizer": {"name": "mean", "modality": "AmplitudeRetrace"},
        "auxiliary": [{"name": "mean", "modality": "PhaseRetrace"}],
        "policy": {
            "name": "gain_per_cost",
            "model": "multitask",
            "n_initial": 4,
            "fit_iterations": 30,
            "params": {"use_structure": 1, "refit_growth": 1.5, "n_candidates": 2048},
        },
        "budget": {"max_measurements": budget},
        "time_scale": 0.0,
        "run_dir": str(run_dir),
    }


@pytest.mark.skipif(not PFM.is_file(), reason="shared datasets folder is absent")
def test_real_pfm_channels_are_modalities_of_different_cost(tmp_path: Path) -> None:
    from coscope.campaign import CampaignLoop, LocalExecutor
    from coscope.config import parse_spec
    from coscope.infra.compose import (
        create_or_open_store,
        instruments_from_spec,
        open_context,
        sample_from_spec,
    )

    data = tmp_path / "pto.zarr"
    import_dataset(PFM, data, fmt="pfm-h5", signal_channels=["AmplitudeRetrace", "PhaseRetrace"])
    spec = parse_spec(pfm_channels_spec(data, tmp_path / "run", 12))
    sample = sample_from_spec(spec.sample, spec.seed)
    assert sample.shape == (256, 256)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    outcome = CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample))).run()
    decisions = ctx.store.decisions()
    ctx.store.close()
    assert outcome.n_measurements == 12
    assert {d.modality for d in decisions} == {"AmplitudeRetrace", "PhaseRetrace"}
    for d in decisions:
        assert d.expected_cost == (5.0 if d.modality == "AmplitudeRetrace" else 1.0)
        truth = sample.truth[d.modality][d.location.row, d.location.col]
        measured = next(m for m in ctx.store.measurements() if m.step == d.step)
        np.testing.assert_array_equal(measured.signal, truth)  # the recording, replayed
    cov = ctx.agent.task_covariance()
    assert cov.shape == (2, 2) and np.all(np.isfinite(cov))
    assert ctx.agent.coords.shape == (256 * 256, 3)  # coordinates + the known height image
