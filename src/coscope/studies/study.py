"""Run a study's campaigns as Dask tasks and write what they produced.

The driver (this module, in the CLI process) submits one :func:`~coscope.studies.runs.run_job`
per campaign to ``dask_client(address, workers)`` — plain JSON-safe dicts cross, plain dicts
come back — and, as each one completes, logs it as an MLflow child run and prints one line.
At the end it writes ``curves.csv``, ``summary.md`` and ``plots/`` and attaches them to the
parent run. Worker processes never open MLflow.

Output folder::

    <out>/study.json         the plan: kind, spec, keys of every campaign
    <out>/curves.csv         one row per (campaign keys, step)
    <out>/summary.md         mean ± std at 2 %, 5 %, 10 % of the grid and at the end
    <out>/plots/*.png        metric vs measurements
    <out>/runs/<policy>/seed-<k>/trace.zarr   (benchmark) · runs/set-<k>/trace.zarr (seeds)
    <out>/mlflow.db, mlartifacts/            unless the spec names a tracking_uri
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import as_completed

from coscope.config import CampaignSpec
from coscope.errors import ConfigError
from coscope.infra.compose import check_spec_fits_sample, sample_from_spec, space_from_spec
from coscope.infra.dask import dask_client
from coscope.infra.tracking import local_artifact_root
from coscope.studies.plots import plot_curves, plot_spread
from coscope.studies.runs import run_job
from coscope.studies.tables import summary_markdown, write_curves
from coscope.studies.tracking import StudyTracker

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class StudyPlan:
    """Everything a study will run, validated before anything is written.

    Attributes:
        kind: ``"benchmark"`` or ``"seeds"``.
        spec: The base campaign spec.
        jobs: One job per campaign (:mod:`coscope.studies.runs`), heaviest first.
        key_names: Columns that identify a campaign in ``curves.csv``.
        group_key: The key curves are grouped by in the summary and plots.
        out: Output folder (must not exist or be empty).
        workers: LocalCluster worker processes (ignored with ``spec.dask_address``).
        params: Study parameters for the MLflow parent run.
        n_pixels: Grid size of the sample (for the 2/5/10 % checkpoints).
        notes: Lines for the top of ``summary.md``.
    """

    kind: str
    spec: CampaignSpec
    jobs: list[dict[str, Any]]
    key_names: tuple[str, ...]
    group_key: str
    out: Path
    workers: int
    params: dict[str, Any]
    n_pixels: int
    notes: tuple[str, ...] = field(default=())


def check_out(out: Path) -> None:
    """ConfigError unless ``out`` is missing or an empty folder (a study never overwrites)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"--out '{out}' already exists and is not empty; choose a new folder or remove it."
        )


def grid_pixels(spec: CampaignSpec) -> int:
    """Candidates of the spec's space (every pixel of a grid sample, the masked-in pixels,
    the rows of a table); ConfigError when the spec does not fit the sample."""
    sample = sample_from_spec(spec.sample, spec.seed)
    space = space_from_spec(spec.sample, sample)
    check_spec_fits_sample(spec, sample, space)
    return space.size


def base_job_spec(spec: CampaignSpec, run_dir: Path, **changes: Any) -> dict[str, Any]:
    """The spec dict of one campaign: run folder and store under ``run_dir``, no latency.

    Paths are made absolute here, before the spec travels to a Dask worker whose working
    folder may be anywhere (the trace lands under ``--out`` whichever worker runs it).
    """
    run_dir = run_dir.resolve()
    data = spec.to_json_dict()
    data.update(
        run_dir=str(run_dir),
        store=str(run_dir / "trace.zarr"),
        time_scale=0.0,
        tracking_uri=None,
        dask_address=None,
    )
    data.update(changes)
    return data


def _describe(result: dict[str, Any]) -> str:
    keys = " ".join(f"{k}={v}" for k, v in result["keys"].items())
    last = result["rows"][-1] if result["rows"] else {}
    parts = [f"{last.get('n_measurements', 0)} measurements in {result['seconds']:.1f} s"]
    for metric, fmt in (("rmse", ".3g"), ("top1_fraction", ".2f"), ("regret", ".3g")):
        if last.get(metric) is not None:
            parts.append(f"{metric} {last[metric]:{fmt}}")
    return f"{keys}: " + ", ".join(parts)


Finished = Iterator[tuple[dict[str, Any], Callable[[], dict[str, Any]]]]
"""``(job, result)`` per campaign in the order they finish; ``result()`` returns the
:func:`~coscope.studies.runs.run_job` dict or raises the campaign's error."""


def dask_campaigns(client: Client, plan: StudyPlan) -> Finished:
    """Every job of ``plan`` as one Dask task :func:`~coscope.studies.runs.run_job`, keyed
    ``<kind>-<i>`` on the scheduler; yielded as each finishes."""
    futures = {
        client.submit(run_job, job, pure=False, key=f"{plan.kind}-{i}"): job
        for i, job in enumerate(plan.jobs)
    }
    for future in as_completed(list(futures)):
        yield futures[future], future.result


def run_study(
    plan: StudyPlan,
    echo: Callable[[str], None] = print,
    *,
    client: Client | None = None,
    campaigns: Callable[[Client, StudyPlan], Finished] = dask_campaigns,
) -> dict[str, Any]:
    """Run every campaign of ``plan`` on Dask; write and log the outputs.

    Args:
        plan: The validated study.
        echo: Told one line per finished campaign.
        client: The Dask client to run on (default: one on ``plan.spec.dask_address``, or a
            LocalCluster of ``plan.workers``, for the length of the study).
        campaigns: How the jobs are run on ``client`` (default :func:`dask_campaigns`; the
            ``study`` Prefect flow wraps each in a task run, :mod:`coscope.flows.study`).

    Returns:
        ``{"results", "failed", "seconds", "out", "parent_run_id"}``.
    """
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(
        json.dumps(
            {"kind": plan.kind, "params": plan.params, "jobs": [j["keys"] for j in plan.jobs]},
            indent=2,
        )
    )
    uri = plan.spec.tracking_uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    tracker = StudyTracker(uri, f"{plan.spec.name}-{plan.kind}", local_artifact_root(uri, out))
    parent = tracker.start(f"{plan.kind} {time.strftime('%Y-%m-%d %H:%M')}", plan.params)
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    with ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(plan.spec.dask_address, plan.workers))
        n_workers = len(client.scheduler_info().get("workers", {}))
        finished = campaigns(client, plan)
        for done, (job, result_of) in enumerate(finished, start=1):
            try:
                result = result_of()
            except Exception as exc:  # one failed campaign must not lose the others
                keys = " ".join(f"{k}={v}" for k, v in job["keys"].items())
                failed.append(f"{keys}: {exc}")
                tracker.log_campaign({"keys": job["keys"], "rows": []}, status="FAILED")
                echo(f"[{done}/{len(plan.jobs)}] FAILED {keys}: {exc}")
                continue
            results.append(result)
            tracker.log_campaign(result)
            echo(f"[{done}/{len(plan.jobs)}] {_describe(result)}")
    order = {json.dumps(j["keys"]): i for i, j in enumerate(plan.jobs)}
    results.sort(key=lambda r: order[json.dumps(r["keys"])])
    seconds = time.perf_counter() - t0
    artifacts = [out / "curves.csv", out / "summary.md"]
    write_curves(results, out / "curves.csv", plan.key_names)
    length = max((int(r["n_measurements"]) for res in results for r in res["rows"]), default=0)
    notes = [*plan.notes, f"Wall time {seconds:.0f} s on {n_workers} Dask workers."]
    if failed:
        notes.append("Failed campaigns: " + "; ".join(failed))
    (out / "summary.md").write_text(
        summary_markdown(
            results,
            group_key=plan.group_key,
            n_pixels=plan.n_pixels,
            budget=length,
            title=f"{plan.kind} study of '{plan.spec.name}'",
            notes=notes,
            spread=plan.kind == "seeds",
        )
    )
    if results and length:
        title = f"{plan.spec.name}: {plan.kind}"
        plot_curves(results, plan.group_key, length, out / "plots", title)
        if plan.kind == "seeds":
            plot_spread(results, plan.group_key, length, out / "plots" / "spread.png", title)
        artifacts.append(out / "plots")
    tracker.finish(artifacts, status="FAILED" if failed else "FINISHED")
    return {
        "results": results,
        "failed": failed,
        "seconds": seconds,
        "out": out,
        "parent_run_id": parent,
    }
