"""After a crash, resume logs to MLflow exactly the steps of the trace it lacks.

A crash is simulated deterministically: the campaign's metric writer drops every batch from
a step on (what a killed process had queued but not written), one fit's log is lost (a kill
between the trace's append and the tracker's), and the loop dies by an exception raised after
``K`` measurements were stored. The resumed run must leave MLflow holding every step once,
with the values of an uninterrupted run (timestamps and fit seconds aside).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from coscope.campaign import CampaignLoop, LocalExecutor
from coscope.campaign.reconcile import missing_decisions, missing_fits, missing_measurements
from coscope.campaign.tracker import LoggedSteps
from coscope.config import CampaignSpec, parse_spec
from coscope.infra.compose import (
    create_or_open_store,
    instruments_from_spec,
    open_context,
    sample_from_spec,
)
from coscope.infra.metric_writer import MetricWriter
from coscope.infra.tracking import MlflowTracker, NullTracker
from coscope.types import FitRecord, Location, Measurement, Proposal

BUDGET = 10


class Crash(Exception):
    """The process dies here."""


def _spec(run_dir: Path, queue_depth: int) -> CampaignSpec:
    return parse_spec(
        {
            "name": "reconcile",
            "seed": 5,
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "instruments": [{"name": "afm", "latency_s": 0.0, "cost": 1.5, "noise": 0.02}],
            "policy": {"name": "ei", "n_initial": 3, "fit_iterations": 30},
            "budget": {"max_measurements": BUDGET},
            "queue_depth": queue_depth,
            "time_scale": 0.0,
            "run_dir": str(run_dir),
        }
    )


class LosingTracker(MlflowTracker):
    """An MLflow tracker whose process dies: per-event metrics from ``lost_from`` on are never
    written, nor the fit at step ``lost_fit``."""

    def __init__(self, spec: CampaignSpec, lost_from: int, lost_fit: int) -> None:
        self.lost_fit = lost_fit
        self.dead = MetricWriter(self._write_unless_lost)
        self.lost_from = lost_from
        run_dir = spec.resolved_run_dir()
        super().__init__(spec.resolved_tracking_uri(), spec.name, run_dir / "mlartifacts",
                         writer=self.dead)  # fmt: skip

    def _write_unless_lost(self, run_id: str, metrics: Sequence[Any]) -> None:
        if metrics[0].step < self.lost_from:
            self.write_batch(run_id, metrics)

    def log_fit(self, record: FitRecord) -> None:
        if record.step != self.lost_fit:
            super().log_fit(record)


def _loop(spec: CampaignSpec, tracker: MlflowTracker | None):
    sample = sample_from_spec(spec.sample, spec.seed)
    create_or_open_store(spec, sample)[0].close()
    ctx, _ = open_context(spec.resolved_store(), track=tracker is None)
    if tracker is not None:
        ctx.tracker = tracker
        ctx.store.set_attr("mlflow_run_id", tracker.start(spec.to_json_dict()))
    return ctx, CampaignLoop(ctx, LocalExecutor(instruments_from_spec(spec, sample)))


def _histories(spec: CampaignSpec, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=spec.resolved_tracking_uri())
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
        if key != "fit.seconds"  # wall-clock
    }


def _uninterrupted(spec: CampaignSpec) -> dict[str, list[tuple[int, float]]]:
    ctx, loop = _loop(spec, tracker=None)
    assert loop.run().n_measurements == BUDGET
    ctx.tracker.finish("finished")
    run_id = ctx.store.get_attr("mlflow_run_id")
    ctx.store.close()
    return _histories(spec, run_id)


@pytest.mark.parametrize("queue_depth", [0, 1])
def test_resume_logs_exactly_the_steps_a_crash_lost(tmp_path: Path, queue_depth: int) -> None:
    reference = _uninterrupted(_spec(tmp_path / "ref", queue_depth))
    assert {"rmse", "fit.loss", "decision.acquisition", "best_so_far"} <= set(reference)
    spec = _spec(tmp_path / "crashed", queue_depth)
    k = 6  # measurements stored before the crash; the writer lost steps 4 and 5, the fit at 3
    tracker = LosingTracker(spec, lost_from=k - 2, lost_fit=3)
    ctx, loop = _loop(spec, tracker)

    def die_after_k(row: dict[str, float]) -> None:
        if row["n_measurements"] >= k:
            raise Crash

    ctx.on_measurement = die_after_k
    with pytest.raises(Crash):
        loop.run()
    tracker.dead.close()  # what was written is written; the rest died with the process
    run_id = tracker.run_id
    assert run_id is not None
    ctx.store.close()
    crashed = _histories(spec, run_id)
    assert [s for s, _ in crashed["n_measurements"]] == list(range(k - 2))
    assert 3 not in [s for s, _ in crashed["fit.n_train"]]

    for _ in range(2):  # the second resume finds everything and logs nothing
        resumed, loop = _loop(spec, tracker=None)
        outcome = loop.run()
        resumed.tracker.finish("finished")
        resumed.store.close()
        assert outcome.n_measurements == BUDGET
        assert resumed.tracker.run_id == run_id
        assert _histories(spec, run_id) == reference


def test_missing_steps_from_what_the_tracker_holds() -> None:
    decisions = [Proposal(s, "afm", "m", Location(s, 0), "ei") for s in range(4)]
    fits = [
        FitRecord(version=v, step=s, n_train=s, loss=0.1, seconds=0.0)
        for v, s in enumerate([1, 2, 2, 3])
    ]
    held = LoggedSteps(decisions=frozenset({0, 1}), measurements=frozenset({0}), fits=(1, 2))
    assert [d.step for d in missing_decisions(decisions, held)] == [2, 3]
    assert [f.version for f in missing_fits(fits, held)] == [2, 3]  # the second fit at step 2
    measured = [Measurement(s, "afm", "m", Location(s, 0), signal=None) for s in range(3)]
    assert missing_measurements(measured, {1}, held) == {2}  # step 1 a source's: no row
    everything = NullTracker().logged_steps()
    assert missing_decisions(decisions, everything) == []
    assert missing_fits(fits, everything) == []
    assert missing_measurements(measured, set(), everything) == frozenset()
