"""Crashes at random moments (seeded): after every resume the trace and MLflow hold every step
exactly once, with the values of an uninterrupted run (issue 17).

One campaign (the kill-test campaign of `campaign_process`: `coscope run` in a subprocess,
Prefect flow, Dask LocalCluster, MLflow sqlite, Zarr trace) is killed twice — SIGKILL to its
process group, or SIGTERM to the campaign process — each time once the trace holds a drawn
number of measurements plus a drawn delay (so the kill lands anywhere in a step: deciding,
measuring, writing), then resumed with `coscope resume`, until it finishes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from coscope.storage import TraceStore
from tests.e2e.campaign_process import BUDGET, _coscope, _counts, _finish, _spec, _wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

PER_EVENT = ("reward", "best_so_far", "cost_spent", "n_measurements", "rmse", "nrmse", "mae")
"""Per-measurement metrics; with every ``decision.*`` and ``fit.*`` (but ``fit.seconds``)
the keys whose histories must equal the uninterrupted run's."""


def _histories(store: Path) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store.parent / 'mlflow.db'}")
    run_id = TraceStore.open(store, mode="r").get_attr("mlflow_run_id")
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
        if key in PER_EVENT or (key.startswith(("decision.", "fit.")) and key != "fit.seconds")
    }


@pytest.mark.parametrize(("seed", "how"), [(0, signal.SIGKILL), (1, signal.SIGTERM)])
def test_random_crashes_leave_every_step_once_in_trace_and_mlflow(
    tmp_path: Path, prefect_server: str, reference: Path, seed: int, how: signal.Signals
) -> None:
    rng = np.random.default_rng([17, seed])
    spec = _spec(tmp_path, "crashed")
    store = tmp_path / "crashed" / "trace.zarr"
    n_kills = 0
    for drawn in sorted(rng.choice(np.arange(1, BUDGET), size=2, replace=False)):
        target = max(int(drawn), _counts(store)["measurements"] + 1)
        if target > BUDGET:
            break
        args = ("resume", str(store)) if n_kills else ("run", str(spec))
        proc = _coscope(*args, api_url=prefect_server)
        _wait_until(store, proc, lambda c, t=target: c["measurements"] >= t)
        time.sleep(float(rng.uniform(0.0, 0.3)))  # anywhere in the step after it
        if how == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGTERM)  # the campaign process only, as a supervisor does
        code, _, err = _finish(proc, timeout=600)
        n_kills += 1
        if how == signal.SIGTERM:
            assert code == 130 and "Traceback" not in err, err
    assert n_kills >= 2
    code, _, err = _finish(_coscope("resume", str(store), api_url=prefect_server))
    assert code == 0, err

    trace = TraceStore.open(store, mode="r")
    assert [m.step for m in trace.measurements()] == list(range(BUDGET))
    assert [d.step for d in trace.decisions()] == list(range(BUDGET))
    assert trace.pending_decisions() == [] and trace.get_attr("status") == "finished"
    got, want = _histories(store), _histories(reference)
    for key in ("n_measurements", "reward", "decision.model_version"):
        assert [s for s, _ in got[key]] == list(range(BUDGET)), key  # every step, once
    assert sorted(s for s, _ in got["fit.n_train"]) == sorted(f.step for f in trace.fits())
    assert got == want
