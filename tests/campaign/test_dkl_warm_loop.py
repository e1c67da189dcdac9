"""Warm-started DKL in the campaign loop: spec fields, fits on the executor, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.config import parse_spec
from coscope.errors import ConfigError
from tests.campaign.test_loop import _path, _run, _spec


def test_warm_start_spec_fields_are_validated() -> None:
    spec = parse_spec(
        {"policy": {"name": "ei", "model": "dkl", "warm_start": True, "cold_every": 5}}
    )
    assert spec.policy.warm_start and spec.policy.cold_every == 5
    assert spec.policy.warm_iterations == 20
    with pytest.raises(ConfigError, match="warm_start applies to model: dkl"):
        parse_spec({"policy": {"name": "ei", "warm_start": True}})
    with pytest.raises(ConfigError, match="warm_iterations"):
        parse_spec({"policy": {"name": "ei", "model": "dkl", "warm_iterations": 0}})


def test_warm_started_dkl_campaign_resumes_to_the_same_path(tmp_path: Path) -> None:
    policy = {
        "name": "ei",
        "model": "dkl",
        "window": 5,
        "n_initial": 3,
        "fit_iterations": 20,
        "warm_start": True,
        "cold_every": 3,
        "warm_iterations": 5,
    }
    changes = {"policy": policy, "budget": {"max_measurements": 10}}
    full, full_ctx = _run(_spec(tmp_path / "a", **changes))
    assert full.n_measurements == 10
    fits = full_ctx.store.fits()
    assert len(fits) == 10
    _run(_spec(tmp_path / "b", **{**changes, "budget": {"max_measurements": 5}}))
    _, resumed_ctx = _run(_spec(tmp_path / "b", **changes))  # resumes between two anchors
    assert _path(resumed_ctx.store) == _path(full_ctx.store)
    assert [f.loss for f in resumed_ctx.store.fits()] == [f.loss for f in fits]
