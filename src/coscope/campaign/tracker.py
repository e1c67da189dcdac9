"""What a campaign asks of its tracker (MLflow, or nothing): the :class:`Tracker` protocol.

:class:`~coscope.infra.tracking.MlflowTracker` and :class:`~coscope.infra.tracking.NullTracker`
implement it; the loop, steering, the theory intake and the flows talk to this protocol only.
:class:`LoggedSteps` is what a tracker already holds, read on resume to log what a crash lost
(:mod:`coscope.campaign.reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from coscope.types import FitRecord, Intervention, Proposal


@dataclass(frozen=True)
class LoggedSteps:
    """The steps a tracker holds, per kind of event; ``None``: all of them (nothing to add).

    Attributes:
        decisions: Steps of the logged decisions.
        measurements: Steps of the logged measurement rows (reward, best_so_far …).
        fits: The step of every logged fit, one entry per fit (a step may hold several).
    """

    decisions: frozenset[int] | None = None
    measurements: frozenset[int] | None = None
    fits: tuple[int, ...] | None = None


@runtime_checkable
class Tracker(Protocol):
    """Records a campaign's events outside the trace (MLflow)."""

    run_id: str | None
    """The tracker's run (``None`` before :meth:`start` or when tracking nothing)."""

    def start(self, spec: dict[str, Any], run_id: str | None = None) -> str | None:
        """Create the campaign's run, or reopen ``run_id``; returns the run id."""
        ...

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Per-measurement metrics (reward, best so far, cost spent, RMSE …)."""
        ...

    def log_decision(self, proposal: Proposal) -> None:
        """One decision (score, predicted mean/std, expected cost)."""
        ...

    def log_fit(self, record: FitRecord) -> None:
        """One fitted model (loss, hyperparameters)."""
        ...

    def log_checkpoint(self, state: Any, version: int) -> None:
        """A fitted model's plain state as an artifact."""
        ...

    def log_array(self, path: str, array: Any) -> None:
        """An array artifact (``.npy``) at ``path``."""
        ...

    def log_intervention(self, intervention: Intervention) -> None:
        """One intervention (applied or refused)."""
        ...

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        """Every file of ``folder`` as artifacts under ``artifact_path``."""
        ...

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Final or summary metrics at ``step``."""
        ...

    def register_model(self, model_dir: Path, artifact_path: str, name: str) -> str | None:
        """Log a saved model and register it under ``name``; returns its version."""
        ...

    def logged_steps(self) -> LoggedSteps:
        """What the run holds already (after writing what is queued); read on resume."""
        ...

    def flush(self) -> None:
        """Write every queued event now (a durable point: a checkpoint, a stop)."""
        ...

    def finish(self, status: str) -> None:
        """Close the run with the campaign's status."""
        ...
