"""Scheduled co-navigation: the theory-batch flow and `coscope serve` against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from coscope.cli import main
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.flows.theory_batch import run_theory_batch
from coscope.infra.deployments import theory_deployment
from coscope.storage import TraceStore
from tests.agents.test_conavigation import _run, _spec


def test_theory_batch_reads_the_trace_and_writes_a_recalibrated_twin(tmp_path: Path) -> None:
    ctx, _ = _run(tmp_path, 20)
    ctx.store.close()
    store = ctx.spec.resolved_store()
    counts = TraceStore.open(store, mode="r").counts()
    out = run_theory_batch(str(store), n_simulations=4, register=False)
    assert out["batch"] == 0 and out["n_simulations"] == 4
    assert out["n_experiments"] == len(ctx.agent.experiments)
    # no campaign runs: the batch took the writer role and appended itself (paid by the batch)
    after = TraceStore.open(store, mode="r")
    assert out["recorded_steps"] == list(range(counts["decisions"], counts["decisions"] + 4))
    assert after.counts() == {
        **counts,
        "decisions": counts["decisions"] + 4,
        "measurements": counts["measurements"] + 4,
        "interventions": 1,
    }
    assert {d.policy for d in after.decisions()[counts["decisions"] :]} == {"theory-batch"}
    folder = Path(out["folder"])
    sims = np.load(folder / "simulations.npz")
    assert sims["loops"].shape[0] == 4 and sims["theta"].shape == (4, 3)
    assert np.all((sims["theta"][:, 0] >= 1.0) & (sims["theta"][:, 0] <= 5.0))
    assert len({tuple(r) for r in np.c_[sims["locations"], sims["theta"]]}) == 4
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["theta_after"] is not None and summary["theta_before"] is not None
    assert (folder / "twin" / "artefact" / "twin.npz").exists()
    again = run_theory_batch(str(store), n_simulations=2, register=False)
    assert again["batch"] == 1  # a new folder per batch


def test_serve_errors_are_one_sentence(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = parse_spec(_spec(tmp_path))
    with pytest.raises(ConfigError, match="not both"):
        theory_deployment(spec, tmp_path, interval=5, cron="* * * * *")
    with pytest.raises(ConfigError, match="not a cron expression"):
        theory_deployment(spec, tmp_path, cron="every ten minutes")
    data = _spec(tmp_path)
    data["instruments"] = data["instruments"][:1]
    data["policy"] = {"name": "ei"}
    with pytest.raises(ConfigError, match="no theory instrument"):
        theory_deployment(parse_spec(data), tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec(tmp_path / "run")))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        code = main(["serve", str(path), "--register-only"])
    assert code == 2
    err = capsys.readouterr().err
    assert "needs a running Prefect server" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "trace.zarr").exists()  # nothing written


@pytest.mark.slow  # a real prefect server, `coscope serve` in a subprocess, a flow run (~1 min)
def test_serve_registers_scheduled_deployments_and_runs_a_theory_batch(
    tmp_path: Path, prefect_server: str
) -> None:
    ctx, _ = _run(tmp_path / "run", 16)  # the experimental trace a batch picks up
    ctx.store.close()
    data = _spec(tmp_path / "run", 16)
    data["dask_workers"] = 1
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "COSCOPE_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "coscope.cli", "serve", str(spec_path)]
    proc = subprocess.Popen(
        [*cmd, "--theory-interval", "3600", "--simulations", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: prefect_server}):
            deadline = time.time() + 600
            deployment = None
            while time.time() < deadline and deployment is None:
                try:
                    with get_client(sync_client=True) as client:
                        deployment = client.read_deployment_by_name("theory-batch/conav-theory")
                        client.read_deployment_by_name("campaign/conav")
                except Exception:
                    assert proc.poll() is None, proc.stdout.read()
                    time.sleep(1.0)
            assert deployment is not None
            assert len(deployment.schedules) == 1
            assert deployment.schedules[0].schedule.interval.total_seconds() == 3600
            assert deployment.parameters["n_simulations"] == 3
            run = run_deployment("theory-batch/conav-theory", timeout=600)
            assert run.state.is_completed(), run.state
            # the campaign deployment runs too (its budget is already spent: it just finishes)
            run = run_deployment("campaign/conav", timeout=600)
            assert run.state.is_completed(), run.state
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    summary = json.loads(
        (tmp_path / "run" / "theory_batches" / "batch-0000" / "summary.json").read_text()
    )
    assert summary["n_simulations"] == 3 and summary["theta_after"] is not None
    assert summary["twin"]["registered_model"] == "conav-twin"
    # no campaign ran while the batch did: it recorded itself in the trace
    assert len(summary["recorded_steps"]) == 3
    trace = TraceStore.open(tmp_path / "run" / "trace.zarr", mode="r")
    batch = [d for d in trace.decisions() if d.policy == "theory-batch"]
    assert [d.step for d in batch] == summary["recorded_steps"]
    assert all("flow run" in d.params["who"] for d in batch)
