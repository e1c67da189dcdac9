"""Campaigns on a masked grid and on a table, end to end on the LocalExecutor (small, fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import check_spec_fits_sample, sample_from_spec, truth_map
from coscope.replay import retrace
from coscope.report.status import campaign_status, format_status
from coscope.storage import TraceStore
from coscope.storage.dataset_readers import import_dataset
from coscope.studies.runs import run_job

ROOT = Path(__file__).resolve().parents[2]


def _process_table():
    spec = importlib.util.spec_from_file_location(
        "process_table", ROOT / "examples/process_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    base = {
        "name": "space-e2e",
        "seed": 1,
        "instruments": [{"name": "afm", "latency_s": 0.0, "noise": 0.01}],
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 30},
        "budget": {"max_measurements": 8},
        "time_scale": 0.0,
        "store": str(tmp_path / "trace.zarr"),
        "run_dir": str(tmp_path / "run"),
    }
    return {**base, **changes}


def test_masked_grid_campaign_measures_only_inside_the_mask(tmp_path: Path) -> None:
    data = _spec(tmp_path, sample={"params": {"size": 12}, "mask": {"rect": [2, 3, 8, 10]}})
    out = run_job({"spec": data, "keys": {}})
    assert out["status"] == "finished" and len(out["points"]) == 8
    assert all(2 <= r < 8 and 3 <= c < 10 for r, c in out["points"])
    assert out["rows"][-1]["top1_fraction"] is not None
    store = TraceStore.open(tmp_path / "trace.zarr", mode="r")
    assert store.get_attr("space")["kind"] == "masked_grid"
    store.close()
    spec = parse_spec(data)
    truth = truth_map(spec, sample_from_spec(spec.sample, spec.seed))
    assert np.isnan(truth[0, 0]) and np.isfinite(truth[2:8, 3:10]).all()
    assert "masked_grid: 42 candidates" in format_status(campaign_status(tmp_path / "trace.zarr"))
    result = retrace(tmp_path / "trace.zarr", top_k=3)
    for row in result.rows:
        assert all(2 <= r < 8 and 3 <= c < 10 for r, c in row["runners_up"])


def test_seed_points_off_the_mask_are_refused(tmp_path: Path) -> None:
    data = _spec(
        tmp_path, sample={"params": {"size": 12}, "mask": {"interior": 5}}, seed_points=[[0, 0]]
    )
    spec = parse_spec(data)
    with pytest.raises(ConfigError) as exc:
        check_spec_fits_sample(spec, sample_from_spec(spec.sample, spec.seed))
    assert "seed_points entry (0, 0)" in str(exc.value)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    module = _process_table()
    csv = module.write_csv(folder / "t.csv", rows=60, seed=0)
    out = folder / "t.zarr"
    import_dataset(csv, out, features=",".join(module.FEATURES), targets="loop_area")
    return out


@pytest.mark.parametrize("model", ["gp", "dkl"])
def test_table_campaign_learns_on_the_features(tmp_path: Path, table: Path, model: str) -> None:
    policy = {"name": "ei", "model": model, "n_initial": 4, "fit_iterations": 30}
    data = _spec(
        tmp_path,
        sample={"kind": "dataset", "params": {"path": str(table)}},
        instruments=[{"name": "furnace", "modalities": ["targets"], "latency_s": 0.0}],
        scalarizer={"name": "value_at", "modality": "targets", "params": {"at": 0}},
        policy=policy,
    )
    out = run_job({"spec": data, "keys": {}})
    assert out["status"] == "finished"
    rows = [r for r, _ in out["points"]]
    assert all(c == 0 for _, c in out["points"]) and len(set(rows)) == 8 and max(rows) < 60
    assert out["rows"][-1]["top1_fraction"] is not None  # top 1 % of 60 candidates: 1 row
    store = TraceStore.open(tmp_path / "trace.zarr", mode="r")
    desc = store.get_attr("space")
    fits = store.fits()
    store.close()
    assert desc["kind"] == "table" and len(desc["names"]) == 7 and len(desc["values"]) == 60
    assert fits and fits[-1].n_train >= 4
    status = campaign_status(tmp_path / "trace.zarr")
    assert status["space"] == {"kind": "table", "candidates": 60, "layout": [60, 1]}


@pytest.mark.parametrize("model", ["gp", "dkl"])
def test_agents_on_a_table_see_its_normalised_features(table: Path, model: str) -> None:
    from coscope.infra.compose import agent_from_spec, space_from_spec
    from coscope.types import Location, Observation

    data = {
        "name": "t",
        "sample": {"kind": "dataset", "params": {"path": str(table)}},
        "instruments": [{"name": "f", "modalities": ["targets"]}],
        "scalarizer": {"name": "value_at", "modality": "targets"},
        "policy": {"name": "ei", "model": model},
    }
    spec = parse_spec(data)
    sample = sample_from_spec(spec.sample, spec.seed)
    space = space_from_spec(spec.sample, sample)
    agent = agent_from_spec(spec, sample, space)
    agent.ingest([Observation(k, "targets", Location(3 * k, 0), float(k)) for k in range(3)])
    X, _ = agent.training_data()
    np.testing.assert_array_equal(X, space.features()[[0, 3, 6]])
    assert X.shape == (3, 7)


@pytest.mark.parametrize("policy", ["random", "raster", "ei"])
def test_every_agent_proposes_exactly_the_candidates(policy: str) -> None:
    from coscope.agents import make_agent
    from coscope.spaces import MaskedGrid
    from coscope.types import Observation

    mask = np.zeros((5, 6), dtype=bool)
    mask[1:4, 1:3] = True
    mask[4, 5] = True
    space = MaskedGrid((5, 6), mask)
    agent = make_agent(policy, space, seed=0, n_initial=2, fit_iterations=20)
    chosen = []
    for step in range(space.size + 1):
        proposals = agent.suggest(1, step=step, instrument="i", modality="m")
        if not proposals:
            break
        loc = proposals[0].location
        chosen.append(loc.flat(6))
        agent.ingest([Observation(step, "m", loc, float(loc.row + loc.col))])
    assert sorted(chosen) == space.indices.tolist()
    report = agent.report()
    assert np.isnan(report.mean[0, 0]) and np.isfinite(report.mean[1, 1])


def test_a_table_agent_from_python() -> None:
    from coscope.agents import make_agent
    from coscope.spaces import CandidateTable
    from coscope.types import Observation

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 6))
    agent = make_agent("ei", CandidateTable(X, list("abcdef")), seed=0, n_initial=3)
    for step in range(6):
        (p,) = agent.suggest(1, step=step, instrument="i", modality="m")
        assert p.location.col == 0 and 0 <= p.location.row < 40
        agent.ingest(
            [Observation(step, "m", p.location, float(-((X[p.location.row] - 0.5) ** 2).sum()))]
        )
    assert agent.report().mean.shape == (40, 1)


BEPS = Path("/work/shared/datasets/dtmicroscope-afm/BEPS_PTO_50x50.h5")


def _example(tmp_path: Path, name: str, data: Path) -> dict[str, Any]:
    from coscope.config import load_spec

    spec = load_spec(ROOT / "examples" / name).to_json_dict()
    spec["sample"]["params"]["path"] = str(data)
    spec.update(
        budget={"max_measurements": 8},
        time_scale=0.0,
        store=str(tmp_path / "trace.zarr"),
        run_dir=str(tmp_path / "run"),
    )
    spec["policy"]["fit_iterations"] = 30
    return spec


def test_process_table_example_runs(tmp_path: Path) -> None:
    """examples/process_table.yaml on a small table made by examples/process_table.py."""
    module = _process_table()
    csv = module.write_csv(tmp_path / "t.csv", rows=50, seed=1)
    data = tmp_path / "t.zarr"
    import_dataset(csv, data, features=",".join(module.FEATURES), targets=",".join(module.TARGETS))
    out = run_job({"spec": _example(tmp_path, "process_table.yaml", data), "keys": {}})
    assert out["status"] == "finished" and len(out["points"]) == 8


@pytest.mark.skipif(not BEPS.is_file(), reason="shared datasets folder is absent")
def test_beps_masked_example_runs(tmp_path: Path) -> None:
    """examples/beps_masked.yaml (DKL on the interior) on the real BEPS data, 8 measurements."""
    data = tmp_path / "beps_pto.zarr"
    import_dataset(BEPS, data)
    out = run_job({"spec": _example(tmp_path, "beps_masked.yaml", data), "keys": {}})
    assert out["status"] == "finished" and len(out["points"]) == 8
    assert all(7 <= r <= 42 and 7 <= c <= 42 for r, c in out["points"])  # 15 x 15 fits


def test_a_seed_point_intervention_off_the_mask_is_refused(tmp_path: Path) -> None:
    from coscope.campaign.adopt import facts_of
    from coscope.campaign.steering import InterventionError, Settings, validate

    spec = parse_spec(_spec(tmp_path, sample={"params": {"size": 12}, "mask": {"interior": 5}}))
    facts = facts_of(spec, (12, 12), {})
    settings = Settings.from_spec(spec)
    assert validate("seed_points", {"points": [[5, 5]]}, settings, facts) == {"points": [[5, 5]]}
    with pytest.raises(InterventionError) as exc:
        validate("seed_points", {"points": [[0, 0]]}, settings, facts)
    assert "sample.mask" in str(exc.value) and str(exc.value).endswith(".")


def test_maps_are_drawn_for_every_space(tmp_path: Path) -> None:
    from coscope.report.maps import write_space_maps
    from coscope.spaces import CandidateTable, MaskedGrid, PixelGrid
    from coscope.types import Location

    rng = np.random.default_rng(0)
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:5, 1:5] = True
    table = CandidateTable(rng.uniform(size=(20, 3)), ["a", "b", "c"])
    for k, (space, shape) in enumerate(
        ((PixelGrid((6, 6)), (6, 6)), (MaskedGrid((6, 6), mask), (6, 6)), (table, (20, 1)))
    ):
        grid = rng.normal(size=shape)
        path = write_space_maps(
            tmp_path / str(k),
            space,
            structure=grid,
            mean=grid,
            std=np.abs(grid),
            truth=None if k == 2 else grid,
            visited=[Location(1, 1 if k < 2 else 0)],
            title="t",
        )
        assert path.stat().st_size > 1000
