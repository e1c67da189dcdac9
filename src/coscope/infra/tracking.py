"""MLflow tracking: one run per campaign, resumed with the campaign.

Logged: the spec as params (flattened keys); per measurement the reward, best so far, cost
spent and prediction error against ground truth (when known); per decision the acquisition
score, predicted mean/std and expected cost; per fit the loss and hyperparameters; the
model state at checkpoints and the report and decision table as artifacts.

Everything goes through ``MlflowClient`` with an explicit run id — no global active run — and
metrics are sent with ``log_batch`` (one round trip per event).
"""

from __future__ import annotations

import getpass
import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from coscope.campaign.tracker import LoggedSteps
from coscope.errors import ConfigError
from coscope.infra.metric_writer import MetricWriter
from coscope.types import FitRecord, Intervention, Proposal

STEP_KEYS = {"decisions": "decision.model_version", "measurements": "n_measurements",
             "fits": "fit.n_train"}  # fmt: skip
"""One metric per kind of event that every event of the kind logs (never NaN)."""


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = json.dumps(value)[:5000] if not isinstance(value, str) else value[:5000]


def check_tracking_uri(uri: str) -> None:
    """ConfigError (one sentence) when a remote MLflow tracking server does not answer.

    Local URIs (sqlite, files) are created on first use and need no check.
    """
    if not uri.startswith(("http://", "https://")):
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # any client or server failure means the same to the user
        raise ConfigError(
            f"cannot use the MLflow tracking URI '{uri}' ({type(exc).__name__}); start that "
            "server or drop tracking_uri from the spec to track in the run folder."
        ) from None


class NullTracker:
    """Tracks nothing (dry runs and unit tests of the loop)."""

    run_id: str | None = None

    def start(self, spec: dict[str, Any], run_id: str | None = None) -> str | None:
        return None

    def log_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_decision(self, proposal: Proposal) -> None: ...

    def log_fit(self, record: FitRecord) -> None: ...

    def log_checkpoint(self, state: Any, version: int) -> None: ...

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None: ...

    def log_array(self, path: str, array: Any) -> None: ...

    def log_intervention(self, intervention: Intervention) -> None: ...

    def logged_steps(self) -> LoggedSteps:
        return LoggedSteps()  # holds nothing, lacks nothing

    def flush(self) -> None: ...

    def finish(self, status: str) -> None: ...

    def log_metrics(self, step: int, values: dict[str, float]) -> None: ...

    def register_model(self, model_dir: Path, artifact_path: str, name: str) -> str | None:
        return None


def local_artifact_root(tracking_uri: str, run_dir: Path) -> Path | None:
    """Where a new experiment keeps its artifacts: ``<run_dir>/mlartifacts`` for an embedded
    (``sqlite:``, ``file:``, a path) store; ``None`` for a tracking server, whose own
    artifact store (``--artifacts-destination``/``--default-artifact-root``) is used."""
    scheme = tracking_uri.split(":", 1)[0].lower() if ":" in tracking_uri else ""
    if scheme in ("http", "https", "databricks", "uc"):
        return None
    return run_dir / "mlartifacts"


def run_tags(campaign: str, store: str | Path | None) -> dict[str, str]:
    """Tags of a campaign's MLflow run: campaign, store (absolute), user, coscope's version,
    and the git commit of the working folder when it is a git checkout."""
    tags = {"coscope.campaign": campaign, "mlflow.user": getpass.getuser()}
    if store is not None:
        tags["coscope.store"] = str(Path(store).resolve())
    try:
        tags["coscope.version"] = metadata.version("coscope")
    except metadata.PackageNotFoundError:
        pass
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return tags
    if done.returncode == 0 and done.stdout.strip():
        tags["mlflow.source.git.commit"] = done.stdout.strip()
    return tags


class MlflowTracker:
    """Log a campaign to MLflow.

    Args:
        tracking_uri: ``sqlite:///…`` (default, embedded) or ``http://host:port`` of a server.
        experiment: Experiment name (the campaign name).
        artifact_root: Folder for artifacts of a new experiment (with a sqlite backend); None
            leaves it to the tracking server (:func:`local_artifact_root`).
        writer: Writes the per-event metrics (default: a
            :class:`~coscope.infra.metric_writer.MetricWriter` on ``log_batch``, made on first
            use); tests pass one whose writes a simulated crash drops.
        tags: Tags of a new run (:func:`run_tags`).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_root: Path | None = None,
        writer: MetricWriter | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._experiment = experiment
        self._artifact_root = artifact_root
        self._tags = dict(tags or {})
        self.run_id: str | None = None
        self._writer = writer

    def write_batch(self, run_id: str, metrics: Sequence[Any]) -> None:
        """One ``log_batch`` of metrics (what the background writer calls)."""
        self._client.log_batch(run_id, metrics=metrics)

    def _experiment_id(self) -> str:
        found = self._client.get_experiment_by_name(self._experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self._artifact_root is not None:
            self._artifact_root.mkdir(parents=True, exist_ok=True)
            location = self._artifact_root.resolve().as_uri()
        return self._client.create_experiment(self._experiment, artifact_location=location)

    def start(self, spec: dict[str, Any], run_id: str | None = None) -> str:
        """Create the campaign's run (tagged), or reopen ``run_id`` when resuming; returns the
        run id."""
        if run_id is not None:
            self.run_id = run_id
            self._client.update_run(run_id, status="RUNNING")
            return run_id
        run = self._client.create_run(
            self._experiment_id(), run_name=spec.get("name"), tags=dict(self._tags)
        )
        self.run_id = run.info.run_id
        params: dict[str, str] = {}
        _flatten("", spec, params)
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])
        return self.run_id

    def _metrics(
        self, step: int, values: dict[str, float], prefix: str = "", background: bool = False
    ) -> None:
        """Log ``values`` at ``step``; ``background``: by the writer thread (per-event ones)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(prefix + k, float(v), now, int(step))
            for k, v in values.items()
            if v is not None and v == v  # drop NaN
        ]
        if not metrics or not self.run_id:
            return
        if background:
            if self._writer is None:
                self._writer = MetricWriter(self.write_batch)
            self._writer.put(self.run_id, metrics)
        else:
            self._client.log_batch(self.run_id, metrics=metrics)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Per-measurement metrics (reward, best_so_far, cost_spent, rmse …) at ``step``."""
        self._metrics(step, {k: v for k, v in metrics.items() if k != "step"}, background=True)

    def log_decision(self, proposal: Proposal) -> None:
        """The decision's acquisition score, prediction and expected cost at its step."""
        self._metrics(
            proposal.step,
            {
                "acquisition": proposal.score,
                "predicted_mean": proposal.predicted_mean,
                "predicted_std": proposal.predicted_std,
                "expected_cost": proposal.expected_cost,
                "model_version": float(proposal.model_version),
            },
            prefix="decision.",
            background=True,
        )
        if proposal.policy == "gain_per_cost":  # score = expected gain / cost, per modality too
            gain = proposal.score * proposal.expected_cost
            self._metrics(
                proposal.step,
                {
                    "gain": gain,
                    f"{proposal.modality}.gain": gain,
                    f"{proposal.modality}.expected_cost": proposal.expected_cost,
                    "row": float(proposal.location.row),
                    "col": float(proposal.location.col),
                },
                prefix="decision.",
                background=True,
            )

    def log_fit(self, record: FitRecord) -> None:
        """Fit loss, time and scalar hyperparameters at the fit's step."""
        values = {"loss": record.loss, "seconds": record.seconds, "n_train": float(record.n_train)}
        for key, value in record.hyperparameters.items():
            if isinstance(value, int | float):
                values[f"hp.{key}"] = float(value)
        self._metrics(record.step, values, prefix="fit.")

    def log_checkpoint(self, state: Any, version: int) -> None:
        """Save the surrogate's plain state as ``checkpoints/model-v<version>.npz`` (arrays and
        JSON, no pickle: :mod:`coscope.infra.checkpoints`); an exact GP is also logged as the
        MLflow model ``models/surrogate-v<version>`` and registered as ``<campaign>-surrogate``
        (:mod:`coscope.models.surrogate_pyfunc`). A checkpoint is a durable point, so the
        queued metrics are written first."""
        if not self.run_id:
            return
        self.flush()
        from coscope.infra.checkpoints import write_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            path = write_checkpoint(state, Path(tmp) / f"model-v{version:04d}.npz")
            self._client.log_artifact(self.run_id, str(path), artifact_path="checkpoints")
            if type(state).__name__ == "GPState":  # an exact GP: also an MLflow model
                from coscope.models.surrogate_pyfunc import save_surrogate_pyfunc

                model = save_surrogate_pyfunc(state, Path(tmp) / "model")
                self.register_model(
                    model, f"models/surrogate-v{version:04d}", f"{self._experiment}-surrogate"
                )

    def log_array(self, path: str, array: Any) -> None:
        """Save ``array`` as the ``.npy`` artifact ``path`` (e.g. ``embeddings/v0003.npy``)."""
        if not self.run_id:
            return
        import numpy as np

        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / name, np.asarray(array))
            self._client.log_artifact(
                self.run_id, str(Path(tmp) / name), artifact_path=folder or None
            )

    def log_intervention(self, intervention: Intervention) -> None:
        """Metric ``intervention.<kind>`` (1 applied, 0 rejected) at its step — for an answer
        of the approval gate ``approval.<answer>`` (approved, modified, rejected, timed_out)
        at the step it answers — and the whole record (what, when, who, why) as
        ``interventions/<t_ms>-<kind>.json``."""
        if not self.run_id:
            return
        applied = 0.0 if "rejected" in intervention.payload else 1.0
        answer = intervention.payload.get("answer") if intervention.kind == "approval" else None
        if isinstance(answer, str) and applied:
            step = int(intervention.payload.get("step", intervention.step))
            self._metrics(step, {f"approval.{answer}": 1.0})
        else:
            self._metrics(intervention.step, {f"intervention.{intervention.kind}": applied})
        record = {
            "kind": intervention.kind,
            "payload": intervention.payload,
            "step": intervention.step,
            "who": intervention.who,
            "why": intervention.why,
            "t": intervention.t,
        }
        name = f"interventions/{int(intervention.t * 1000):013d}-{intervention.kind}.json"
        self._client.log_text(self.run_id, json.dumps(record, default=str), name)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        """Upload every file under ``folder``."""
        if self.run_id:
            self._client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def flush(self) -> None:
        """Wait until the background writer has written every queued metric."""
        if self._writer is not None:
            self._writer.flush()

    def logged_steps(self) -> LoggedSteps:
        """The steps of the run's decisions, measurement rows and fits, read from MLflow (one
        metric history per kind, :data:`STEP_KEYS`) after the queued metrics are written."""
        self.flush()
        if not self.run_id:
            return LoggedSteps()
        steps = {
            kind: [m.step for m in self._client.get_metric_history(self.run_id, key)]
            for kind, key in STEP_KEYS.items()
        }
        return LoggedSteps(
            decisions=frozenset(steps["decisions"]),
            measurements=frozenset(steps["measurements"]),
            fits=tuple(sorted(steps["fits"])),
        )

    def finish(self, status: str) -> None:
        """Write what the background writer holds; mark the run FINISHED, KILLED or FAILED."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()  # re-raises a failed write, after the run is marked below
        finally:
            if self.run_id:
                mlflow_status = {"finished": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")
                self._client.set_terminated(self.run_id, status=mlflow_status)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Named metrics at ``step`` (NaN dropped): a digital twin's parameters, utilisation,
        per-modality errors."""
        self._metrics(step, values)

    def register_model(self, model_dir: Path, artifact_path: str, name: str) -> str | None:
        """Upload the MLflow model folder ``model_dir`` to the run as ``artifact_path`` and
        register it in the model registry as ``name``; returns the new version."""
        if not self.run_id:
            return None
        from mlflow.exceptions import MlflowException

        self._client.log_artifacts(self.run_id, str(model_dir), artifact_path=artifact_path)
        try:
            self._client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self._client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"
        version = self._client.create_model_version(name, source, run_id=self.run_id)
        return str(version.version)
