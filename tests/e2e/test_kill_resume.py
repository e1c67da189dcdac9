"""End to end on the real engines: `coscope run` in a subprocess (Prefect flow, Dask
LocalCluster, MLflow sqlite, Zarr trace), killed with SIGKILL or SIGINT at several points,
then resumed. Nothing is lost, nothing is measured twice, and the decisions equal those of an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coscope.storage import TraceStore

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

BUDGET = 12
SPEC = """
name: kill-test
seed: 11
sample: {{kind: synthetic_film, params: {{size: 24}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.25, cost: 1.0, noise: 0.02}}
scalarizer: {{name: loop_area, modality: beps_loop}}
policy: {{name: ei, n_initial: 3, fit_iterations: 50}}
budget: {{max_measurements: {budget}}}
time_scale: 1.0
dask_workers: 1
run_dir: {run_dir}
"""


def _spec(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(budget=BUDGET, run_dir=tmp_path / name))
    return path


def _env(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "COSCOPE_LOG_LEVEL": "WARNING"}


def _coscope(*args: str, api_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", *args, "--quiet"],
        env=_env(api_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: we kill the campaign and its workers
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _counts(store: Path) -> dict[str, int]:
    try:
        return TraceStore.open(store, mode="r").counts()
    except Exception:  # not created yet
        return {"decisions": 0, "measurements": 0}


def _wait_until(store: Path, proc: subprocess.Popen, predicate, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate(_counts(store)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"campaign ended before the kill point: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("kill point not reached in time")


def _path(store: Path) -> list[tuple[int, int]]:
    return [(d.location.row, d.location.col) for d in TraceStore.open(store).decisions()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    """An uninterrupted run of the same spec."""
    tmp = tmp_path_factory.mktemp("reference")
    code, out, err = _finish(_coscope("run", str(_spec(tmp, "ref")), api_url=prefect_server))
    assert code == 0, err
    store = tmp / "ref" / "trace.zarr"
    assert TraceStore.open(store).counts()["measurements"] == BUDGET
    assert (tmp / "ref" / "report" / "maps.png").stat().st_size > 10_000
    return store


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
        pytest.param(lambda c: c["measurements"] >= 4, id="after-4-measurements"),
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
