"""Interventions reach MLflow: a metric per kind (1 applied, 0 rejected) and the full record."""

from __future__ import annotations

import json
from pathlib import Path

from coscope.infra.tracking import MlflowTracker
from coscope.types import Intervention


def test_log_intervention_records_what_when_who_why(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "steer", tmp_path / "artifacts")
    run_id = tracker.start({"name": "steer"})
    tracker.log_intervention(
        Intervention("policy", {"name": "ucb"}, step=7, who="ana", why="explore", t=1.7e9)
    )
    tracker.log_intervention(
        Intervention("pause", {"rejected": "already paused"}, step=9, who="ana", t=1.7e9 + 1)
    )
    client = MlflowClient(uri)
    policy = client.get_metric_history(run_id, "intervention.policy")
    pause = client.get_metric_history(run_id, "intervention.pause")
    assert [(m.step, m.value) for m in policy] == [(7, 1.0)]
    assert [(m.step, m.value) for m in pause] == [(9, 0.0)]
    files = sorted(a.path for a in client.list_artifacts(run_id, "interventions"))
    assert len(files) == 2 and files[0].endswith("-policy.json")
    local = client.download_artifacts(run_id, files[0], str(tmp_path / "dl"))
    record = json.loads(Path(local).read_text())
    assert record == {
        "kind": "policy",
        "payload": {"name": "ucb"},
        "step": 7,
        "who": "ana",
        "why": "explore",
        "t": 1.7e9,
    }
