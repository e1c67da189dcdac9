"""Errors a run would meet inside the flow: found before the engines start, or, if one still
happens inside, one sentence on the terminal (exit 2) and the traceback in the run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
BASE = """
name: errs
sample: {{kind: synthetic_film, params: {{size: 12}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.0, cost: 1.0{options}}}
scalarizer: {scalarizer}
policy: {policy}
budget: {{max_measurements: 6}}
dask_workers: 1
time_scale: 0.0
run_dir: {run_dir}
"""
USER_CODE = """
import numpy as np
CALLS = [0]
def as_array(signal, axis):
    return signal * 2
def flaky(signal, axis):
    CALLS[0] += 1
    if CALLS[0] > 20:  # passes coscope's probe, fails on the ground-truth map in the flow
        raise RuntimeError("flaky detector model")
    return float(np.max(signal))
"""


def _run(tmp_path: Path, api_url: str | None = None, **fields: str) -> subprocess.CompletedProcess:
    (tmp_path / "h7_user_code.py").write_text(USER_CODE)
    values = {
        "options": "",
        "scalarizer": "{name: loop_area, modality: beps_loop}",
        "policy": "{name: ei, n_initial: 3, fit_iterations: 20}",
        "run_dir": str(tmp_path / "run"),
        **fields,
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE.format(**values))
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{tmp_path}"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"policy": "{name: ucb, params: {beta: -1}}"}, "'beta' must be a number >= 0"),
        (
            {"scalarizer": "{name: window_integral, params: {lo: 90, hi: 99}}"},
            "holds no point of the signal's axis",
        ),
        ({"scalarizer": "{name: 'h7_user_code:as_array', modality: beps_loop}"}, "an array"),
        ({"scalarizer": "{name: 'builtins:max', modality: beps_loop}"}, "standard library"),
        ({"options": ", options: {colour: red}"}, "invalid options"),
    ],
)
def test_found_before_the_engines_start(tmp_path: Path, fields: dict, words: str) -> None:
    done = _run(tmp_path, **fields)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err.startswith("error: ") and words in err and "\n" not in err, err
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr
    assert not (tmp_path / "run" / "trace.zarr").exists()


@pytest.mark.slow
def test_an_error_inside_the_flow_is_one_sentence_and_a_log(
    tmp_path: Path, prefect_server: str
) -> None:
    done = _run(
        tmp_path, prefect_server, scalarizer="{name: 'h7_user_code:flaky', modality: beps_loop}"
    )
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "| ERROR" not in done.stderr, done.stderr
    (line,) = [e for e in err if e.startswith("error: ")]
    assert "flaky detector model" in line and "coscope-error.log" in line
    log = (tmp_path / "run" / "coscope-error.log").read_text()
    assert "Traceback" in log and "RuntimeError: flaky detector model" in log
