"""Both trackers implement the campaign's Tracker protocol (run_id and log_intervention too)."""

from __future__ import annotations

from pathlib import Path

from coscope.campaign.tracker import LoggedSteps, Tracker
from coscope.infra.tracking import MlflowTracker, NullTracker
from coscope.types import FitRecord, Intervention, Location, Proposal

NAN = float("nan")


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


def test_logged_steps_name_what_the_run_holds_per_kind(tmp_path: Path) -> None:
    assert NullTracker().logged_steps() == LoggedSteps()  # holds nothing, lacks nothing
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "contract", tmp_path / "artifacts")
    tracker.start({"name": "contract"})
    for step in (0, 2):
        tracker.log_decision(Proposal(step, "afm", "m", Location(step, 0), "ei"))
        tracker.log_step(step, {"step": step, "n_measurements": step + 1.0, "reward": NAN})
    for step in (1, 1, 3):
        tracker.log_fit(FitRecord(version=0, step=step, n_train=step, loss=0.1, seconds=0.0))
    held = tracker.logged_steps()  # written by the background writer first
    assert held == LoggedSteps(frozenset({0, 2}), frozenset({0, 2}), (1, 1, 3))
    tracker.finish("finished")
