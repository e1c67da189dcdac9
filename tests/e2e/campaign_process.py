"""Running `coscope run` as a user does, in a subprocess of its own process group, and watching
its trace: the helpers of the end-to-end tests, and one uninterrupted run of the kill-test
campaign that the kill, crash and resume tests compare against."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coscope.storage import TraceStore

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


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    """An uninterrupted run of the kill-test spec (once per test process: the kill and crash
    tests share it)."""
    tmp = tmp_path_factory.mktemp("reference")
    code, out, err = _finish(_coscope("run", str(_spec(tmp, "ref")), api_url=prefect_server))
    assert code == 0, err
    store = tmp / "ref" / "trace.zarr"
    assert TraceStore.open(store).counts()["measurements"] == BUDGET
    assert (tmp / "ref" / "report" / "maps.png").stat().st_size > 10_000
    return store
