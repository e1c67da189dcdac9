"""MLflow for a study: one parent run for the study, one child run per campaign.

Logged from the driver process only, as each campaign's result comes back from its worker:
the child gets the tag ``mlflow.parentRunId``, its keys (policy, seed …) as params and the
curve rows as metrics at ``step = n_measurements``. The parent gets the study's params and,
at the end, the CSV, summary and plots as artifacts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from coscope.infra.tracking import _flatten

_BATCH = 900  # MLflow accepts 1000 metrics per log_batch


class StudyTracker:
    """Parent/child MLflow runs of one study.

    Args:
        tracking_uri: ``sqlite:///…`` or a server URI.
        experiment: Experiment name (created with ``artifact_root`` when missing).
        artifact_root: Artifact folder of a new experiment; None: the tracking server's own.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            location = None
            if artifact_root is not None:
                artifact_root.mkdir(parents=True, exist_ok=True)
                location = artifact_root.resolve().as_uri()
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location
            )
        self.parent_id: str | None = None

    def _params(self, run_id: str, params: dict[str, Any]) -> None:
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = [Param(k, v) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def start(self, name: str, params: dict[str, Any]) -> str:
        """Create the parent run; returns its id."""
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"coscope.kind": "study"}
        )
        self.parent_id = run.info.run_id
        self._params(self.parent_id, params)
        return self.parent_id

    def log_campaign(self, result: dict[str, Any], status: str = "FINISHED") -> str:
        """One child run from a worker's result (``keys``, ``rows``, ``seconds``)."""
        keys = result["keys"]
        name = " ".join(f"{k}={v}" for k, v in keys.items())
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": self.parent_id or "", "coscope.kind": "campaign"},
        )
        run_id = run.info.run_id
        self._params(run_id, {**keys, "store": result.get("store", "")})
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, int(row["n_measurements"]))
            for row in result.get("rows", [])
            for k, v in row.items()
            if k not in ("step", "n_measurements") and v is not None and v == v
        ]
        if "seconds" in result:
            metrics.append(Metric("seconds", float(result["seconds"]), now, 0))
        for i in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + _BATCH])
        self.client.set_terminated(run_id, status=status)
        return run_id

    def finish(self, artifacts: list[Path], status: str = "FINISHED") -> None:
        """Upload the study's files and folders to the parent run and close it."""
        if self.parent_id is None:
            return
        for path in artifacts:
            if path.is_dir():
                self.client.log_artifacts(self.parent_id, str(path), artifact_path=path.name)
            elif path.exists():
                self.client.log_artifact(self.parent_id, str(path))
        self.client.set_terminated(self.parent_id, status=status)
