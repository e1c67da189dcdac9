"""A continuous box end to end on the real engines: `coscope run examples/box_branin.yaml`-like
specs in a subprocess (Prefect flow, Dask LocalCluster, MLflow sqlite, Zarr trace), killed
with SIGKILL while a decision is in flight and resumed: the same points as an uninterrupted
run. Then `coscope status` and `coscope check` read the produced trace (a box's replay,
retrace and reports are tests/spaces/test_box.py's, in process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coscope.storage import TraceStore
from tests.e2e.campaign_process import _coscope, _counts, _env, _finish, _wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 8


def _spec(tmp_path: Path, name: str) -> Path:
    text = (ROOT / "examples" / "box_branin.yaml").read_text()
    text = text.replace("latency_s: 0.0", "latency_s: 0.3")  # room for a kill mid-flight
    text = text.replace("max_measurements: 25", f"max_measurements: {BUDGET}")
    text += f"dask_workers: 1\nrun_dir: {tmp_path / name}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _points(store: Path) -> list[tuple[int, list[float]]]:
    return [(d.step, d.params["x"]) for d in TraceStore.open(store).decisions()]


def _cli(*args: str, api_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coscope.cli", *args],
        env=_env(api_url),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_box_campaign_runs_resumes_to_the_same_points_and_reads_back(
    tmp_path: Path, prefect_server: str
) -> None:
    code, _, err = _finish(_coscope("run", str(_spec(tmp_path, "ref")), api_url=prefect_server))
    assert code == 0, err
    reference = tmp_path / "ref" / "trace.zarr"
    assert TraceStore.open(reference).counts()["measurements"] == BUDGET
    assert (tmp_path / "ref" / "report" / "maps.png").stat().st_size > 10_000

    store = tmp_path / "killed" / "trace.zarr"
    proc = _coscope("run", str(_spec(tmp_path, "killed")), api_url=prefect_server)
    in_flight = lambda c: c["measurements"] >= 5 and c["decisions"] > c["measurements"]  # noqa: E731
    _wait_until(store, proc, in_flight)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _counts(store)["measurements"] < BUDGET
    code, _, err = _finish(_coscope("resume", str(store), api_url=prefect_server))
    assert code == 0, err
    trace = TraceStore.open(store)
    assert [m.step for m in trace.measurements()] == list(range(BUDGET))
    assert _points(store) == _points(reference)  # the same points, to the last bit

    status = _cli("status", str(store), api_url=prefect_server)
    assert status.returncode == 0 and "box of 2 dimensions" in status.stdout, status.stderr
    assert "best       " in status.stdout and "x1 = " in status.stdout
    check = _cli("check", str(store), api_url=prefect_server)
    assert check.returncode == 0 and "intact" in check.stdout, check.stdout + check.stderr
