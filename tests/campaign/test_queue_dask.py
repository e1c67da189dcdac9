"""Queues on a real Dask LocalCluster: chained on the scheduler, one measurement at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.campaign import CampaignLoop
from coscope.config import parse_spec
from coscope.errors import InstrumentError
from coscope.infra.compose import (
    create_or_open_store,
    instrument_references,
    open_context,
    sample_from_spec,
)
from coscope.infra.dask import dask_client
from coscope.infra.executors import DaskExecutor
from coscope.types import Location, MeasurementRequest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engines")]

INSTRUMENTS = {"slow": 0.3, "fast": 0.1}  # latency, s


@pytest.fixture(scope="module")
def client():
    with dask_client(None, 3) as c:
        yield c


def _spec(tmp_path: Path):
    return parse_spec(
        {
            "name": "queue-dask",
            "seed": 2,
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "instruments": [
                {"name": name, "latency_s": latency, "cost": 1.0, "noise": 0.02}
                for name, latency in INSTRUMENTS.items()
            ],
            "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 20},
            "budget": {"max_measurements": 14},
            "time_scale": 1.0,
            "queue_depth": 1,
            "run_dir": str(tmp_path / "run"),
        }
    )


def test_queued_requests_never_overlap_and_start_after_their_predecessor(
    tmp_path: Path, client
) -> None:
    spec = _spec(tmp_path)
    create_or_open_store(spec, sample_from_spec(spec.sample, spec.seed))[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=False)
    executor = DaskExecutor(
        client,
        instrument_references(spec),
        seed=spec.seed,
        time_scale=spec.time_scale,
        fit_via_prefect=False,
    )
    outcome = CampaignLoop(ctx, executor).run()
    decisions, measurements = ctx.store.decisions(), ctx.store.measurements()
    ctx.store.close()
    assert outcome.status == "finished" and outcome.n_measurements == 14
    assert len({d.location for d in decisions}) == 14  # queued ones were pending: no repeats
    assert sorted(m.step for m in measurements) == list(range(14))
    for name in INSTRUMENTS:
        mine = sorted((m for m in measurements if m.instrument == name), key=lambda m: m.step)
        assert len(mine) >= 2
        for before, after in zip(mine, mine[1:], strict=False):
            assert after.t_start >= before.t_end  # one measurement at a time, in step order
        first_two = [d for d in decisions if d.instrument == name][:2]
        assert [d.n_known for d in first_two] == [0, 0]  # the second was decided ahead


def _chained_pairs(executor: DaskExecutor) -> list[str]:
    """A failing request with one queued behind it, and a good pair; what each handle gave."""

    def request(step: int, location: Location) -> MeasurementRequest:
        return MeasurementRequest(step, "fast", "beps_loop", location, seed=2)

    bad = executor.submit(request(0, Location(99, 99)))  # off the grid: the instrument refuses
    queued = executor.submit(request(1, Location(1, 1)), after=bad)
    fine = executor.submit(request(2, Location(2, 2)))
    later = executor.submit(request(3, Location(3, 3)), after=fine)
    outcomes, ends = [], {}
    for handle in (bad, queued, fine, later):
        try:
            m = executor.result(handle)
        except InstrumentError as exc:
            outcomes.append("not measured" if "was not measured" in str(exc) else "failed")
            continue
        outcomes.append(f"measured {m.step}")
        ends[m.step] = (m.t_start, m.t_end)
    assert ends[3][0] >= ends[2][1]  # the queued one started when the one before it ended
    return outcomes


EXPECTED = ["failed", "failed", "measured 2", "measured 3"]  # Dask: the error propagates


def test_queued_request_behind_a_failure_is_not_measured(client, tmp_path: Path) -> None:
    refs = instrument_references(_spec(tmp_path))
    executor = DaskExecutor(client, refs, seed=2, time_scale=0.0, fit_via_prefect=False)
    assert _chained_pairs(executor) == EXPECTED


def _prefect_chained(refs: dict) -> list[str]:
    return _chained_pairs(DaskExecutor(None, refs, seed=2, time_scale=0.0, measure_via="prefect"))


def test_prefect_tasks_chain_and_refuse_behind_a_failure(client, tmp_path: Path) -> None:
    """``measure_via: prefect``: a queued task waits for its upstream, never runs after failure."""
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(address=client.scheduler.address)
    chained = flow(_prefect_chained, task_runner=runner, persist_result=False)
    assert chained(instrument_references(_spec(tmp_path))) == [
        "failed",
        "not measured",
        "measured 2",
        "measured 3",
    ]
