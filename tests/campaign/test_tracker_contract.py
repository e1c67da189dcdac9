"""Both trackers implement the campaign's Tracker protocol (run_id and log_intervention too)."""

from __future__ import annotations

from pathlib import Path

from coscope.campaign.tracker import Tracker
from coscope.infra.tracking import MlflowTracker, NullTracker
from coscope.types import Intervention


def test_null_tracker_is_a_tracker() -> None:
    tracker = NullTracker()
    assert isinstance(tracker, Tracker)
    assert tracker.run_id is None and tracker.start({"name": "x"}) is None
    tracker.log_intervention(Intervention("pause", {}))


def test_mlflow_tracker_is_a_tracker_with_a_run_id_once_started(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "contract", tmp_path / "artifacts")
    assert isinstance(tracker, Tracker) and tracker.run_id is None
    run_id = tracker.start({"name": "contract", "seed": 1})
    assert tracker.run_id == run_id
    tracker.log_intervention(Intervention("pause", {}, step=0, who="me", why="test", t=1.0))
    tracker.finish("finished")
