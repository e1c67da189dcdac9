"""Scale-out for real: a campaign and a 4-campaign benchmark on a `prefect server`, a `dask
scheduler` with two `dask worker` processes and an `mlflow server`, all on loopback.

Each engine must hold the work — Prefect the flow and task runs, the Dask scheduler
coscope's task keys, the MLflow server the runs with their artifacts in *its own* artifact
root — and every trace must be under ``--out``, although the workers run elsewhere
(docs/scale-out.md).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import coscope
from coscope.storage import TraceStore
from tests.servers import BIN, dask_processes, engine_env, free_port, process_group, wait_for_http

pytestmark = pytest.mark.slow

SRC = Path(coscope.__file__).resolve().parents[1]  # the sources under test, for the workers

SPEC = """
name: scale-test
seed: 4
sample: {{kind: synthetic_film, params: {{size: 12}}}}
instruments:
  - {{name: afm, modalities: [beps_loop], latency_s: 0.0, cost: 1.0}}
policy: {{name: ei, n_initial: 2, fit_iterations: 20}}
budget: {{max_measurements: 5}}
tracking_uri: {tracking_uri}
"""


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on sqlite with its own proxied artifact store; yields (URI, root)."""
    home = tmp_path_factory.mktemp("mlflow-server")
    root = home / "artifacts"
    port = free_port()
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(root), "--default-artifact-root", "mlflow-artifacts:/",
    ]  # fmt: skip
    env = engine_env(SRC, MLFLOW_DISABLE_TELEMETRY="true")
    with process_group(cmd, home, env) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, home / "server.log")
        yield f"http://127.0.0.1:{port}", root


@pytest.fixture(scope="module")
def dask_cluster(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: str
) -> Iterator[tuple[str, Path]]:
    """``dask scheduler`` + 2 ``dask worker`` processes (one thread each), working in a folder
    of their own; yields (scheduler address, that folder)."""
    home = tmp_path_factory.mktemp("dask")
    env = engine_env(SRC, PREFECT_API_URL=prefect_server)  # the flow's fits run on the workers
    with dask_processes(home, env) as address:
        yield address, home


def _coscope(args: list[str], cwd: Path, prefect: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coscope.cli", *args],
        cwd=cwd,
        env=engine_env(SRC, PREFECT_API_URL=prefect),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr


def test_a_campaign_and_a_benchmark_land_in_every_engine_and_under_out(
    prefect_server: str,
    mlflow_server: tuple[str, Path],
    dask_cluster: tuple[str, Path],
    tmp_path: Path,
) -> None:
    from distributed import Client
    from mlflow.tracking import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tracking_uri, artifact_root = mlflow_server
    address, dask_home = dask_cluster
    client_dir = tmp_path / "client"  # the driver's working folder; --out is relative to it
    client_dir.mkdir()
    (client_dir / "spec.yaml").write_text(SPEC.format(tracking_uri=tracking_uri))
    _coscope(
        ["run", "spec.yaml", "--out", "runs/campaign", "--dask-address", address, "--quiet"],
        client_dir,
        prefect_server,
    )
    _coscope(
        ["benchmark", "spec.yaml", "--seeds", "2", "--policies", "ei,random",
         "--out", "runs/bench", "--dask-address", address],
        client_dir,
        prefect_server,
    )  # fmt: skip
    out = client_dir / "runs"

    # Prefect: the campaign's flow run with its fit task runs; the study's with 4 campaigns
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        with get_client(sync_client=True) as prefect:
            flows = {
                r.name: r
                for r in prefect.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="scale-test"))
                )
            }
            assert set(flows) == {"scale-test: new", "scale-test: benchmark of 4 campaigns"}
            assert all(r.state is not None and r.state.is_completed() for r in flows.values())

            def task_runs(name: str) -> list:
                runs = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flows[name].id]))
                return prefect.read_task_runs(task_run_filter=runs)

            fits = task_runs("scale-test: new")
            campaigns = task_runs("scale-test: benchmark of 4 campaigns")
    assert fits and all(t.state is not None and t.state.is_completed() for t in fits)
    assert sorted(t.name for t in campaigns) == [
        f"policy={p} seed={s}" for p in ("ei", "random") for s in (0, 1)
    ]
    assert all(t.state is not None and t.state.is_completed() for t in campaigns)

    # Dask: the scheduler ran the measurements, the fits and the benchmark's campaigns
    with Client(address, timeout="60s") as dask:
        prefixes = dask.run_on_scheduler(
            lambda dask_scheduler: {
                name: dict(prefix.state_counts)
                for name, prefix in dask_scheduler.task_prefixes.items()
            }
        )
    assert {"measure", "fit_here", "benchmark"} <= set(prefixes), prefixes
    assert all(counts.get("memory", 0) > 0 for counts in prefixes.values()), prefixes

    # MLflow: runs on the server, artifacts in the server's root, none in the run folders
    mlflow = MlflowClient(tracking_uri=tracking_uri)
    campaign_exp = mlflow.get_experiment_by_name("scale-test")
    (run,) = mlflow.search_runs([campaign_exp.experiment_id])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    served = artifact_root / campaign_exp.experiment_id / run.info.run_id / "artifacts"
    assert any(p.suffix == ".png" for p in served.rglob("*"))  # the report's maps
    bench_exp = mlflow.get_experiment_by_name("scale-test-benchmark")
    bench_runs = mlflow.search_runs([bench_exp.experiment_id])
    (parent,) = [r for r in bench_runs if r.data.tags.get("coscope.kind") == "study"]
    children = [
        r for r in bench_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert len(children) == 4
    parent_files = artifact_root / bench_exp.experiment_id / parent.info.run_id / "artifacts"
    assert (parent_files / "curves.csv").is_file() and (parent_files / "summary.md").is_file()
    assert not list(client_dir.rglob("mlartifacts")) and not list(client_dir.rglob("mlflow.db"))

    # Files: every trace under --out (the workers work elsewhere), as the MLflow params say
    stores = {Path(r.data.params["store"]) for r in children}
    assert stores == {
        (out / "bench" / "runs" / p / f"seed-{s}" / "trace.zarr").resolve()
        for p in ("ei", "random")
        for s in (0, 1)
    }
    assert all((store / "zarr.json").is_file() for store in stores)
    with TraceStore.open(out / "campaign" / "trace.zarr", "r") as trace:
        assert trace.campaign["run_dir"] == str((out / "campaign").resolve())  # as it travels
    assert not list(dask_home.rglob("trace.zarr")) and not list(dask_home.rglob("runs"))
    assert {p.name for p in client_dir.iterdir()} == {"spec.yaml", "runs"}
