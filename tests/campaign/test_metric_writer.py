"""Per-event MLflow metrics off the loop's critical path: in order, all there after finish."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coscope.infra.metric_writer import MetricWriter
from coscope.infra.tracking import MlflowTracker
from coscope.types import Location, Proposal


def test_writer_keeps_order_and_flush_waits() -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(run_id: str, metrics) -> None:
        gate.wait(5)
        written.extend(metrics)

    writer = MetricWriter(write)
    for i in range(20):
        writer.put("run", [i])
    assert written == []  # nothing written while the writer is held up: put did not block
    gate.set()
    writer.flush()
    assert written == list(range(20))
    writer.close()


def test_writer_reports_a_failed_write_on_flush() -> None:
    def write(run_id: str, metrics) -> None:
        raise OSError("database is locked")

    writer = MetricWriter(write)
    writer.put("run", [1])
    with pytest.raises(OSError, match="locked"):
        writer.close()


def test_every_step_and_decision_is_in_mlflow_after_finish(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "writer", tmp_path / "artifacts")
    run_id = tracker.start({"name": "writer"})
    for step in range(25):
        proposal = Proposal(
            step=step,
            instrument="afm",
            modality="beps_loop",
            location=Location(step, 0),
            policy="gain_per_cost",
            score=0.5,
            expected_cost=2.0,
        )
        tracker.log_decision(proposal)
        tracker.log_step(step, {"step": step, "reward": float(step), "cost_spent": 2.0 * step})
    tracker.finish("finished")
    client = MlflowClient(tracking_uri=uri)
    rewards = client.get_metric_history(run_id, "reward")
    assert sorted((m.step, m.value) for m in rewards) == [(s, float(s)) for s in range(25)]
    assert len(client.get_metric_history(run_id, "decision.row")) == 25
    assert client.get_run(run_id).info.status == "FINISHED"
