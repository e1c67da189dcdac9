"""The ``study`` Prefect flow: a benchmark or seed study as one flow run, a task run per campaign.

Each campaign still runs as one Dask task (:func:`~coscope.studies.study.dask_campaigns`'s
key ``<kind>-<i>``) on the study's cluster; the Prefect task run ``campaign`` around it, in
a thread of the driver, waits for it — so the Prefect UI shows every campaign running,
finished or failed with its duration, and the Dask workers need no Prefect API of their own.
The progress lines also reach the flow run's logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from coscope.flows.campaign import logs_in_flow_run
from coscope.infra.dask import dask_client
from coscope.infra.runner import children_ignore_sigint, prefect_api
from coscope.studies.runs import run_job
from coscope.studies.study import Finished, StudyPlan, run_study

_LOG = logging.getLogger("coscope.studies")


def campaign_label(job: dict[str, Any]) -> str:
    """A campaign's task-run name: its keys (``policy=ei seed=0``)."""
    return " ".join(f"{k}={v}" for k, v in job["keys"].items())


@task(name="campaign", cache_policy=NO_CACHE, persist_result=False, task_run_name="{label}")
def campaign_task(client: Any, job: dict[str, Any], key: str, label: str) -> dict[str, Any]:
    """Run one campaign of a study as the Dask task ``key`` and wait for its result."""
    return client.submit(run_job, job, pure=False, key=key).result()


def prefect_campaigns(client: Any, plan: StudyPlan) -> Finished:
    """Every job of ``plan`` as a ``campaign`` task run (in the flow's thread pool) around
    its Dask task ``<kind>-<i>``; yielded as each finishes."""
    futures = {
        campaign_task.submit(client, job, f"{plan.kind}-{i}", campaign_label(job)): job
        for i, job in enumerate(plan.jobs)
    }
    for future in as_completed(list(futures)):
        yield futures[future], future.result


@flow(name="study", persist_result=False, validate_parameters=False)
def study_flow(plan: StudyPlan, client: Any, echo: Callable[[str], None]) -> dict[str, Any]:
    """:func:`~coscope.studies.study.run_study` on ``client`` with a task run per campaign."""

    def say(line: str) -> None:
        echo(line)
        _LOG.info(line)  # to the flow run's logs only

    with logs_in_flow_run():
        return run_study(plan, say, client=client, campaigns=prefect_campaigns)


def run_study_flow(
    plan: StudyPlan, echo: Callable[[str], None] = print, host: str = "127.0.0.1"
) -> dict[str, Any]:
    """Run ``plan`` as the ``study`` flow on the Prefect API of ``PREFECT_API_URL`` (else a
    private one, database in ``<out>/prefect``) and the spec's Dask scheduler (else a
    LocalCluster of ``plan.workers`` on ``host``); the flow run is named after the study."""
    with ExitStack() as engines:
        with children_ignore_sigint():
            api_ready = engines.enter_context(prefect_api(plan.out))
            client = engines.enter_context(dask_client(plan.spec.dask_address, plan.workers, host))
        api_ready()
        threads = max(1, len(plan.jobs))  # a thread per campaign: each only waits for Dask
        runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=threads)
        name = f"{plan.spec.name}: {plan.kind} of {len(plan.jobs)} campaigns"
        study = study_flow.with_options(flow_run_name=name, task_runner=runner)  # type: ignore[arg-type]
        return study(plan, client, echo)
