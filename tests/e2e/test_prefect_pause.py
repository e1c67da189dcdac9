"""A real campaign under a real `prefect server`: `coscope intervene pause` shows as a paused
flow run waiting for typed input; the typed input (as the UI sends it) becomes interventions;
`coscope intervene resume` also ends such a pause; replay reproduces every decision."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest

from coscope.cli import main
from coscope.flows.pause import PAUSE_ATTR
from coscope.replay import replay
from coscope.storage import TraceStore

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

SPEC = """
name: pause-test
seed: 5
sample: {{kind: synthetic_film, params: {{size: 20}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.3, cost: 1.0, noise: 0.02}}
policy: {{name: ei, n_initial: 3, fit_iterations: 40}}
budget: {{max_measurements: 60}}
dask_workers: 1
run_dir: {run_dir}
"""


def _wait(predicate, proc: subprocess.Popen, what: str, timeout: float = 600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"campaign ended while waiting for {what}: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _read(store: Path):
    try:
        return TraceStore.open(store, mode="r")
    except Exception:  # not created yet
        return None


def test_pause_waits_for_typed_input_in_prefect(prefect_server: str, tmp_path: Path) -> None:
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(run_dir=tmp_path / "run"))
    store = tmp_path / "run" / "trace.zarr"
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait(lambda: (s := _read(store)) and s.counts()["measurements"] >= 4, proc, "4 points")
        assert main(["intervene", str(store), "pause", "--why", "let me look"]) == 0
        attr = _wait(lambda: _read(store).get_attr(PAUSE_ATTR), proc, "the Prefect pause")
        assert attr["api_url"] == prefect_server
        with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
            from prefect import get_client

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(attr["flow_run_id"])).state
            assert state.is_paused() and state.state_details.run_input_keyset  # waits for input
            n_paused = _read(store).counts()["decisions"]
            time.sleep(1.0)
            assert _read(store).counts()["decisions"] == n_paused  # nothing proposed
            # what the Prefect UI sends when the scientist fills the form and resumes
            resume_flow_run(
                UUID(attr["flow_run_id"]),
                run_input={"policy": "ucb", "beta": 3.0, "note": "more exploration"},
            )
        _wait(lambda: any(i.kind == "resume" for i in _read(store).interventions()), proc, "resume")
        _wait(lambda: _read(store).counts()["decisions"] >= n_paused + 3, proc, "progress")
        assert main(["intervene", str(store), "pause"]) == 0
        _wait(lambda: _read(store).get_attr(PAUSE_ATTR), proc, "the second pause")
        assert main(["intervene", str(store), "resume", "--why", "from the shell"]) == 0
        _wait(lambda: _read(store).get_attr(PAUSE_ATTR) is None, proc, "the pause to end")
        _wait(lambda: len(_read(store).interventions()) >= 5, proc, "the second resume")
        assert main(["intervene", str(store), "stop"]) == 0
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, proc.communicate()
    trace = TraceStore.open(store, mode="r")
    items = trace.interventions()
    assert [i.kind for i in items] == ["pause", "policy", "resume", "pause", "resume", "stop"]
    assert items[1].who.startswith("prefect-ui (OS user ") and items[1].why == "more exploration"
    assert items[1].payload["name"] == "ucb" and items[1].payload["params"] == {"beta": 3.0}
    assert items[4].why == "from the shell" and not items[4].who.startswith("prefect-ui")
    decisions = trace.decisions()
    assert decisions[n_paused].policy == "ucb" and decisions[n_paused - 1].policy == "ei"
    assert all(r["agree"] for r in replay(store, metrics=False).rows)
