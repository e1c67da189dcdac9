"""End to end on the real engines: `coscope run` in a subprocess (Prefect flow, Dask
LocalCluster, MLflow sqlite, Zarr trace), killed with SIGKILL or SIGINT at several points,
then resumed. Nothing is lost, nothing is measured twice, and the decisions equal those of an
uninterrupted run with the same seed. (A kill after any number of measurements, anywhere in
a step, is test_crash_integrity's.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coscope.storage import TraceStore
from tests.e2e.campaign_process import (
    BUDGET,
    SPEC,
    _coscope,
    _counts,
    _env,
    _finish,
    _path,
    _spec,
    _wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]


def _assert_same_campaign(store: Path, reference: Path) -> None:
    trace, ref = TraceStore.open(store), TraceStore.open(reference)
    measurements = trace.measurements()
    assert [m.step for m in measurements] == list(range(BUDGET))  # nothing lost, none twice
    assert trace.pending_decisions() == []
    assert _path(store) == _path(reference)  # same decisions as the uninterrupted run
    np.testing.assert_array_equal(
        np.stack([m.signal for m in measurements]), np.stack([m.signal for m in ref.measurements()])
    )
    assert trace.get_attr("status") == "finished"


@pytest.mark.parametrize(
    "kill_point",
    [
        pytest.param(lambda c: c["decisions"] >= 1, id="first-decision-in-flight"),
        pytest.param(
            lambda c: c["measurements"] >= 7 and c["decisions"] > c["measurements"],
            id="decision-stored-not-measured",
        ),
    ],
)
def test_sigkill_then_resume_equals_uninterrupted(
    tmp_path: Path, prefect_server: str, reference: Path, kill_point
) -> None:
    spec = _spec(tmp_path, "killed")
    store = tmp_path / "killed" / "trace.zarr"
    proc = _coscope("run", str(spec), api_url=prefect_server)
    _wait_until(store, proc, kill_point)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _counts(store)
    assert before["measurements"] < BUDGET
    status = subprocess.run(
        [sys.executable, "-m", "coscope.cli", "status", str(store)],
        env=_env(prefect_server),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert status.returncode == 0 and "interrupted" in status.stdout, status.stdout + status.stderr
    code, out, err = _finish(_coscope("resume", str(store), api_url=prefect_server))
    assert code == 0, err
    _assert_same_campaign(store, reference)


def test_ctrl_c_then_run_again_continues(
    tmp_path: Path, prefect_server: str, reference: Path
) -> None:
    spec = _spec(tmp_path, "interrupted")
    store = tmp_path / "interrupted" / "trace.zarr"
    proc = _coscope("run", str(spec), api_url=prefect_server)
    _wait_until(store, proc, lambda c: c["measurements"] >= 5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    code, _, err = _finish(proc, timeout=600)
    assert code == 130, err
    assert "coscope resume" in err and "Traceback" not in err, err
    trace = TraceStore.open(store)
    assert trace.get_attr("status") == "stopped"
    assert trace.pending_decisions() == []  # what was in flight was measured and stored
    assert [i.kind for i in trace.interventions()] == ["stop"]
    assert trace.interventions()[0].why == "Ctrl-C"
    code, _, err = _finish(_coscope("run", str(spec), api_url=prefect_server))  # same spec again
    assert code == 0, err
    _assert_same_campaign(store, reference)


def test_a_second_run_while_the_first_runs_is_refused_and_the_first_finishes(
    tmp_path: Path, prefect_server: str, reference: Path
) -> None:
    """Two runs on one store started seconds apart used to race on the run folder's Prefect
    database; the second is now refused in one sentence before anything starts."""
    spec = _spec(tmp_path, "twice")
    store = tmp_path / "twice" / "trace.zarr"
    first = _coscope("run", str(spec), api_url=prefect_server)
    _wait_until(store, first, lambda c: c["measurements"] >= 2)
    code, _, err = _finish(_coscope("run", str(spec), api_url=prefect_server), timeout=600)
    assert code == 2, err
    assert "campaign 'kill-test' is already running from" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    code, _, err = _finish(first)
    assert code == 0, err
    _assert_same_campaign(store, reference)


def test_campaign_is_tracked_in_mlflow(reference: Path) -> None:
    from mlflow.tracking import MlflowClient

    run_dir = reference.parent
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    run_id = TraceStore.open(reference).get_attr("mlflow_run_id")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["policy.name"] == "ei" and run.data.params["seed"] == "11"
    rewards = client.get_metric_history(run_id, "reward")
    assert sorted(m.step for m in rewards) == list(range(BUDGET))
    assert len(client.get_metric_history(run_id, "rmse")) == BUDGET
    assert len(client.get_metric_history(run_id, "fit.loss")) == BUDGET
    assert len(client.get_metric_history(run_id, "decision.expected_cost")) == BUDGET
    artifacts = {a.path for a in client.list_artifacts(run_id, "report")}
    assert {"report/maps.png", "report/learning_curve.png", "report/summary.json"} <= artifacts
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")][0].endswith(".npz")
    assert [a.path for a in client.list_artifacts(run_id, "trace")] == ["trace/decisions.json"]


def test_measure_as_prefect_task_gives_the_same_campaign(
    tmp_path: Path, prefect_server: str, reference: Path
) -> None:
    """COSCOPE_MEASURE_VIA=prefect: each measurement is the `measure` Prefect task on Dask."""
    spec = tmp_path / "via-prefect.yaml"
    spec.write_text(SPEC.format(budget=5, run_dir=tmp_path / "via-prefect"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        env={**_env(prefect_server), "COSCOPE_MEASURE_VIA": "prefect"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    code, _, err = _finish(proc)
    assert code == 0, err
    store = tmp_path / "via-prefect" / "trace.zarr"
    assert _path(store) == _path(reference)[:5]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="measure"))
        )
    assert len(runs) >= 5 and all(r.state.is_completed() for r in runs)
