"""Studies end to end on a real Dask LocalCluster: curves, summary, plots, MLflow, traces."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from coscope.config import CampaignSpec, parse_spec
from coscope.storage import TraceStore
from coscope.studies import plan_benchmark, plan_seeds, run_study
from coscope.studies.metrics import METRICS
from coscope.studies.runs import run_job


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One LocalCluster (2 one-thread worker processes) shared by the studies of this module."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _spec(**changes) -> CampaignSpec:
    data = {
        "name": "tiny",
        "seed": 0,
        "sample": {"kind": "synthetic_film", "params": {"size": 16}},
        "instruments": [{"name": "afm", "latency_s": 0.5, "cost": 1.0, "noise": 0.02}],
        "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 20},
        "budget": {"max_measurements": 8},
    }
    data.update(changes)
    return parse_spec(data)


@pytest.fixture(scope="module")
def benchmark(scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "study"
    plan = plan_benchmark(
        _spec(dask_address=scheduler), seeds=2, policies=["ei", "random"], out=out
    )
    lines: list[str] = []
    summary = run_study(plan, echo=lines.append)
    return {**summary, "lines": lines}


def test_benchmark_writes_one_curve_row_per_policy_seed_step(benchmark: dict) -> None:
    out: Path = benchmark["out"]
    assert not benchmark["failed"]
    with (out / "curves.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "policy", "seed", "step", "n_measurements", "cost_spent", *METRICS
    ]  # fmt: skip
    assert len(rows) == 2 * 2 * 8
    cells = {(r["policy"], r["seed"]) for r in rows}
    assert cells == {("ei", "0"), ("ei", "1"), ("random", "0"), ("random", "1")}
    for policy, seed in cells:
        mine = [r for r in rows if (r["policy"], r["seed"]) == (policy, seed)]
        assert [int(r["n_measurements"]) for r in mine] == list(range(1, 9))
        last = mine[-1]
        assert float(last["cost_spent"]) == 8.0
        assert 0.0 <= float(last["top1_fraction"]) <= 1.0 and float(last["regret"]) >= 0.0
        assert float(last["rmse"]) > 0 and last["nlpd"] != ""
    assert len(benchmark["lines"]) == 4  # one progress line per finished campaign
    summary = (out / "summary.md").read_text()
    assert "## top1_fraction" in summary and "end (n=8)" in summary and "2% (n=6)" in summary
    for name in ("curves", "rmse", "nlpd", "regret", "top1_fraction", "best_so_far"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000


def test_benchmark_traces_hold_the_campaigns(benchmark: dict) -> None:
    out: Path = benchmark["out"]
    for policy in ("ei", "random"):
        for seed in (0, 1):
            store = TraceStore.open(out / "runs" / policy / f"seed-{seed}" / "trace.zarr", "r")
            assert store.counts()["measurements"] == 8
            assert store.campaign["seed"] == seed and store.campaign["time_scale"] == 0.0
            assert store.campaign["policy"]["name"] == policy


def test_benchmark_mlflow_parent_and_children(benchmark: dict) -> None:
    from mlflow.tracking import MlflowClient

    out: Path = benchmark["out"]
    client = MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("tiny-benchmark")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.run_id == benchmark["parent_run_id"]
    assert parent.data.params["seeds"] == "2" and parent.data.params["policies"] == "ei,random"
    assert parent.data.params["spec.name"] == "tiny"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert {(c.data.params["policy"], c.data.params["seed"]) for c in children} == {
        ("ei", "0"), ("ei", "1"), ("random", "0"), ("random", "1")
    }  # fmt: skip
    history = client.get_metric_history(children[0].info.run_id, "top1_fraction")
    assert sorted(m.step for m in history) == list(range(1, 9))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"curves.csv", "summary.md", "plots"} <= artifacts


def test_seed_study_trajectories_differ_in_their_first_points(
    scheduler: str, tmp_path: Path
) -> None:
    plan = plan_seeds(_spec(dask_address=scheduler), seed_sets=3, initial=3, out=tmp_path / "seeds")
    summary = run_study(plan, echo=lambda line: None)
    results = summary["results"]
    assert [r["keys"]["seed_set"] for r in results] == [0, 1, 2]
    firsts = [tuple(map(tuple, r["points"][:3])) for r in results]
    assert len(set(firsts)) == 3
    for result, job in zip(results, plan.jobs, strict=True):
        assert result["points"][:3] == job["spec"]["seed_points"]  # the initial design first
        assert job["spec"]["seed"] == 0  # the campaign seed is fixed
    out = tmp_path / "seeds"
    assert (out / "plots" / "spread.png").stat().st_size > 1000
    with (out / "curves.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 8 and "seed_set" in rows[0]
    assert "[" in (out / "summary.md").read_text()  # min-max spread in the cells


def test_injection_measures_the_points_next_and_records_them(tmp_path: Path) -> None:
    plan = plan_seeds(_spec(), seed_sets=1, initial=2, inject_at=4, inject=2, out=tmp_path / "s")
    result = run_job(plan.jobs[0])  # in-process: the same function the workers run
    injected = result["injected"]
    assert len(injected) == 2
    assert result["points"][4:6] == injected  # measured right after measurement 4
    assert len({tuple(p) for p in result["points"]}) == 8
    store = TraceStore.open(Path(result["store"]), "r")
    kinds = [(i.kind, i.step, i.payload) for i in store.interventions()]
    assert ("seed_points", 4, {"points": injected}) in kinds
    decisions = store.decisions()
    assert [d.policy for d in decisions[4:6]] == ["seed", "seed"]
