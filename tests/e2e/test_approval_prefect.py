"""The approval gate end to end: `coscope run` (Prefect flow, Dask, MLflow sqlite) under a real
`prefect server`. A waiting proposal shows as a paused flow run waiting for an approval form;
the form's input (sent through the Prefect client as the UI sends it) approves, modifies or
rejects; `coscope approve` from a shell ends the pause too; a bad answer is refused and
recorded; a campaign killed while a proposal waits resumes waiting for the same proposal;
MLflow holds the answers; replay reproduces every recorded decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from coscope.campaign.approval import APPROVAL
from coscope.cli import main
from coscope.flows.pause import PAUSE_ATTR
from coscope.replay import replay
from coscope.storage import TraceStore
from coscope.types import Location

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

SPEC = """
name: approval-test
seed: 7
sample: {{kind: synthetic_film, params: {{size: 16}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.1, cost: 1.0, noise: 0.02}}
policy: {{name: ei, n_initial: 2, fit_iterations: 30}}
budget: {{max_measurements: 6}}
approval: {{required: true}}
dask_workers: 1
run_dir: {run_dir}
"""


def _coscope(args: list[str], api_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", *args, "--quiet"],
        env={**os.environ, "PREFECT_API_URL": api_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _read(store: Path) -> TraceStore | None:
    try:
        return TraceStore.open(store, mode="r")
    except Exception:  # not created yet
        return None


def _paused_for(
    store: Path, proc: subprocess.Popen, step: int, timeout: float = 600, other_than: str = ""
) -> dict:
    """Wait until the flow run (not ``other_than``) is paused for an approval form with
    ``step`` first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        trace = _read(store)
        attr = trace.get_attr(PAUSE_ATTR) if trace is not None else None
        fresh = attr and attr["flow_run_id"] != other_than
        if fresh and attr.get("approval", [None])[0] == step:
            return attr
        if proc.poll() is not None:
            raise AssertionError(f"campaign ended before step {step} waited: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"step {step} never waited in a Prefect pause")


def _answers(store: Path, proc: subprocess.Popen, n: int, timeout: float = 600) -> None:
    """Wait until the trace holds ``n`` approval rows."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        trace = _read(store)
        if trace is not None and sum(i.kind == APPROVAL for i in trace.interventions()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"campaign ended while waiting for answers: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"the trace never held {n} answers")


def _submit(api_url: str, attr: dict, run_input: dict) -> None:
    """What the Prefect UI sends when the scientist fills the form and resumes."""
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        deadline = time.time() + 600  # the attribute is set just before the run pauses
        with get_client(sync_client=True) as client:
            while time.time() < deadline:
                state = client.read_flow_run(UUID(attr["flow_run_id"])).state
                if state is not None and state.is_paused():
                    break
                time.sleep(0.2)
            assert state.is_paused() and state.state_details.run_input_keyset  # a form waits
            # Prefect sets the Paused state first and stores the form's schema just after it
            # (prefect/flow_runs.py, pause_flow_run): resuming in between is refused ("Run
            # input schema not found"), so wait for the schema as the UI's form does.
            schema_key = state.state_details.run_input_keyset["schema"]
            while time.time() < deadline:
                try:
                    client.read_flow_run_input(UUID(attr["flow_run_id"]), schema_key)
                    break
                except httpx.HTTPStatusError:  # 404: not stored yet
                    time.sleep(0.2)
        resume_flow_run(UUID(attr["flow_run_id"]), run_input=run_input)


def test_answers_from_the_prefect_form_and_the_cli(prefect_server: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(run_dir=tmp_path / "run"))
    store = tmp_path / "run" / "trace.zarr"
    proc = _coscope(["run", str(spec)], prefect_server)
    try:
        attr = _paused_for(store, proc, 0)
        assert _read(store).counts()["measurements"] == 0  # nothing measured unapproved
        _submit(prefect_server, attr, {"step": 0, "action": "approve", "note": "fine"})
        attr = _paused_for(store, proc, 1)
        _submit(prefect_server, attr, {"step": 1, "action": "approve", "row": 3, "col": 4})
        attr = _paused_for(store, proc, 2)
        _submit(prefect_server, attr, {"step": 2, "action": "reject", "note": "near the edge"})
        attr = _paused_for(store, proc, 3)
        _submit(prefect_server, attr, {"step": 3, "action": "approve", "row": 99, "col": 0})
        _answers(store, proc, 4)  # refused (recorded): step 3 waits again
        assert main(["approve", str(store), "--step", "3", "--why", "from the shell"]) == 0
        killed_run = _paused_for(store, proc, 4)["flow_run_id"]
        os.killpg(proc.pid, signal.SIGKILL)  # killed while step 4 waits
        proc.wait(timeout=30)
        proc = _coscope(["resume", str(store)], prefect_server)
        attr = _paused_for(store, proc, 4, other_than=killed_run)  # the same proposal waits
        assert _read(store).counts()["decisions"] == 5
        _submit(prefect_server, attr, {"step": 4, "action": "approve"})
        for step in (5, 6):
            attr = _paused_for(store, proc, step)
            _submit(prefect_server, attr, {"step": step, "action": "approve"})
        out, err = proc.communicate(timeout=600)
        code = proc.returncode
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, err
    trace = TraceStore.open(store, mode="r")
    measured = {m.step: m.location for m in trace.measurements()}
    assert sorted(measured) == [0, 1, 3, 4, 5, 6]  # 2 rejected; nothing twice
    assert measured[1] == Location(3, 4) and trace.counts()["decisions"] == 7
    rows = [i for i in trace.interventions() if i.kind == APPROVAL]
    answers = [(r.payload.get("step"), r.payload.get("answer", "refused")) for r in rows]
    assert answers == [
        (0, "approved"),
        (1, "modified"),
        (2, "rejected"),
        (3, "refused"),
        (3, "approved"),
        (4, "approved"),
        (5, "approved"),
        (6, "approved"),
    ]
    assert rows[0].who.startswith("prefect-ui (OS user ") and rows[0].why == "fine"
    assert rows[2].payload["reason"] == "near the edge"
    assert "off the 16 x 16 sample" in rows[3].payload["rejected"]
    assert rows[4].why == "from the shell" and not rows[4].who.startswith("prefect-ui")
    assert trace.get_attr("status") == "finished"
    assert all(r["agree"] for r in replay(store, metrics=False).rows)

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{(tmp_path / 'run' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    run_id = trace.get_attr("mlflow_run_id")
    assert [m.step for m in client.get_metric_history(run_id, "approval.modified")] == [1]
    assert [m.step for m in client.get_metric_history(run_id, "approval.rejected")] == [2]
    approved = [m.step for m in client.get_metric_history(run_id, "approval.approved")]
    assert sorted(approved) == [0, 3, 4, 5, 6]


def test_a_stop_timeout_ends_the_prefect_pause_and_stops(
    prefect_server: str, tmp_path: Path
) -> None:
    """Nobody answers: the campaign ends its own pause at the timeout and stops, resumable."""
    spec = tmp_path / "spec.yaml"
    text = SPEC.format(run_dir=tmp_path / "run")
    spec.write_text(
        text.replace("{required: true}", "{required: true, timeout_s: 5, on_timeout: stop}")
    )
    store = tmp_path / "run" / "trace.zarr"
    proc = _coscope(["run", str(spec)], prefect_server)
    try:
        _paused_for(store, proc, 0)  # the Prefect pause starts; nobody answers
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "coscope resume" in err
    trace = TraceStore.open(store, mode="r")
    (row,) = [i for i in trace.interventions() if i.kind == APPROVAL]
    assert row.payload == {"step": 0, "answer": "timed_out", "on_timeout": "stop"}
    assert trace.get_attr("status") == "stopped" and trace.counts()["measurements"] == 0
    assert trace.get_attr(PAUSE_ATTR) is None
