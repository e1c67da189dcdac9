"""The engines' own views hold the campaign: a Prefect flow run named after it, with coscope's
decisions in its logs and a summary, a decision table and the checkpoint's maps (an inline
PNG) as artifacts; a tagged MLflow run."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

SPEC = """
name: views-test
seed: 2
sample: {{kind: synthetic_film, params: {{size: 12}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.0, cost: 1.0}}
policy: {{name: ei, n_initial: 2, fit_iterations: 20}}
budget: {{max_measurements: 4}}
dask_workers: 1
run_dir: {run_dir}
"""


def test_prefect_and_mlflow_show_the_campaign(prefect_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(run_dir=tmp_path / "run"))
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    done = subprocess.run(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="views-test"))
            )
            assert [r.name for r in runs] == ["views-test: new"]
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id]))
            )
            messages = [log.message for log in logs]
            assert any(m.startswith("step 0: ") for m in messages)
            assert sum("measured (beps_loop)" in m for m in messages) == 4
            artifacts = [a for a in client.read_artifacts() if a.flow_run_id == runs[0].id]
    assert {a.key for a in artifacts} == {
        "views-test-summary",
        "views-test-decisions",
        "views-test-maps",  # at each checkpoint fit (the first fit is one)
    }
    (maps,) = [a for a in artifacts if a.key == "views-test-maps"]
    image = str(maps.data).split("(data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(image).startswith(b"\x89PNG")
    mlflow = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    (run,) = mlflow.search_runs([mlflow.get_experiment_by_name("views-test").experiment_id])
    tags = run.data.tags
    assert tags["coscope.campaign"] == "views-test"
    assert tags["coscope.store"] == str((tmp_path / "run" / "trace.zarr").resolve())
    assert tags["mlflow.user"] and tags["coscope.version"]
