"""The four tables of the trace: their columns, and records <-> rows.

Each table is a Zarr group of equally long 1-D columns sharing one dimension name; row ``i``
of every column together is record ``i``. Measurement signals live apart, in
``signals/<modality>`` (see :mod:`coscope.storage.trace`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from coscope.errors import StoreError
from coscope.storage.columns import ColumnSpec
from coscope.types import FitRecord, Intervention, Location, Measurement, Proposal

Row = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """Schema of one table.

    Attributes:
        name: Group name, e.g. ``"decisions"``.
        dim: Row dimension name, e.g. ``"decision"``.
        columns: Column schemas, in order.
    """

    name: str
    dim: str
    columns: tuple[ColumnSpec, ...]


def _c(name: str, kind: str, doc: str, units: str = "") -> ColumnSpec:
    return ColumnSpec(name, kind, doc, units)  # type: ignore[arg-type]


_LOCATION = (
    _c("row", "int", "sample-grid row of the location, 0 <= row < H", "pixel"),
    _c("col", "int", "sample-grid column of the location, 0 <= col < W", "pixel"),
)

DECISIONS = Table(
    "decisions",
    "decision",
    (
        _c("step", "int", "decision index, strictly increasing"),
        _c("instrument", "str", "instrument asked to execute it"),
        _c("modality", "str", "modality to measure"),
        *_LOCATION,
        _c("policy", "str", "rule that chose it (ei, ucb, maxvar, random, raster, seed ...)"),
        _c("score", "float", "acquisition value of the chosen point (NaN if none)"),
        _c("expected_cost", "float", "cost the agent expected to pay", "cost unit"),
        _c("model_version", "int", "surrogate version used (-1 when none)"),
        _c("predicted_mean", "float", "surrogate mean of the scalar target (NaN if none)"),
        _c("predicted_std", "float", "surrogate standard deviation (NaN if none)"),
        _c("t_decided", "float", "when it was decided", "seconds since 1970-01-01"),
        _c("params", "str", "JSON object of the request's settings (simulator theta, fidelity)"),
        _c("n_known", "int", "measurements committed when it was decided (-1 unknown)"),
    ),
)

MEASUREMENTS = Table(
    "measurements",
    "measurement",
    (
        _c("step", "int", "decision this measurement answers (unique)"),
        _c("instrument", "str", "instrument that produced it"),
        _c("modality", "str", "modality measured; the signal is in signals/<modality>"),
        *_LOCATION,
        _c("cost", "float", "cost charged", "cost unit"),
        _c("t_start", "float", "when the instrument started", "seconds since 1970-01-01"),
        _c("t_end", "float", "when the instrument finished", "seconds since 1970-01-01"),
    ),
)

FITS = Table(
    "fits",
    "fit",
    (
        _c("version", "int", "surrogate version"),
        _c("step", "int", "number of observations it was trained on"),
        _c("n_train", "int", "number of training points"),
        _c("loss", "float", "final negative marginal log likelihood per point"),
        _c("seconds", "float", "wall time of the fit", "s"),
        _c("hyperparameters", "str", "JSON object of named hyperparameters"),
    ),
)

INTERVENTIONS = Table(
    "interventions",
    "intervention",
    (
        _c("kind", "str", "what changed (pause, resume, stop, policy ...)"),
        _c("payload", "str", "JSON object with the details of the change"),
        _c("step", "int", "next decision step when it was applied"),
        _c("who", "str", "who issued it"),
        _c("why", "str", "free-text reason"),
        _c("t", "float", "when it was applied", "seconds since 1970-01-01"),
    ),
)

TABLES = (DECISIONS, MEASUREMENTS, FITS, INTERVENTIONS)


def to_json(value: Any, what: str) -> str:
    """Serialise a payload to JSON; numpy scalars and arrays become numbers and lists."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray | np.generic):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.dumps(value, default=default)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON-serialisable, got {value!r} ({exc})") from exc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise StoreError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be a number, got {value!r}") from exc


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{what} must be a string, got {value!r}")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise StoreError(f"{what} must be a dict, got {value!r}")
    return dict(value)


def decision_row(p: Proposal) -> Row:
    """The decisions-table row of a proposal (validated types)."""
    return {
        "step": _int(p.step, "Proposal.step"),
        "instrument": _str(p.instrument, "Proposal.instrument"),
        "modality": _str(p.modality, "Proposal.modality"),
        "row": _int(p.location.row, "Proposal.location.row"),
        "col": _int(p.location.col, "Proposal.location.col"),
        "policy": _str(p.policy, "Proposal.policy"),
        "score": _float(p.score, "Proposal.score"),
        "expected_cost": _float(p.expected_cost, "Proposal.expected_cost"),
        "model_version": _int(p.model_version, "Proposal.model_version"),
        "predicted_mean": _float(p.predicted_mean, "Proposal.predicted_mean"),
        "predicted_std": _float(p.predicted_std, "Proposal.predicted_std"),
        "t_decided": _float(p.t_decided, "Proposal.t_decided"),
        "params": to_json(_mapping(p.params, "Proposal.params"), "Proposal.params"),
        "n_known": _int(p.n_known, "Proposal.n_known"),
    }


def measurement_row(m: Measurement) -> Row:
    """The measurements-table row of a measurement (its signal is stored apart)."""
    return {
        "step": _int(m.step, "Measurement.step"),
        "instrument": _str(m.instrument, "Measurement.instrument"),
        "modality": _str(m.modality, "Measurement.modality"),
        "row": _int(m.location.row, "Measurement.location.row"),
        "col": _int(m.location.col, "Measurement.location.col"),
        "cost": _float(m.cost, "Measurement.cost"),
        "t_start": _float(m.t_start, "Measurement.t_start"),
        "t_end": _float(m.t_end, "Measurement.t_end"),
    }


def fit_row(r: FitRecord) -> Row:
    """The fits-table row of a fit record; hyperparameters become a JSON string."""
    if not isinstance(r.hyperparameters, Mapping):
        raise StoreError(f"FitRecord.hyperparameters must be a dict, got {r.hyperparameters!r}")
    return {
        "version": _int(r.version, "FitRecord.version"),
        "step": _int(r.step, "FitRecord.step"),
        "n_train": _int(r.n_train, "FitRecord.n_train"),
        "loss": _float(r.loss, "FitRecord.loss"),
        "seconds": _float(r.seconds, "FitRecord.seconds"),
        "hyperparameters": to_json(dict(r.hyperparameters), "FitRecord.hyperparameters"),
    }


def intervention_row(i: Intervention) -> Row:
    """The interventions-table row of an intervention; the payload becomes a JSON string."""
    if not isinstance(i.payload, Mapping):
        raise StoreError(f"Intervention.payload must be a dict, got {i.payload!r}")
    return {
        "kind": _str(i.kind, "Intervention.kind"),
        "payload": to_json(dict(i.payload), "Intervention.payload"),
        "step": _int(i.step, "Intervention.step"),
        "who": _str(i.who, "Intervention.who"),
        "why": _str(i.why, "Intervention.why"),
        "t": _float(i.t, "Intervention.t"),
    }


def _records(cols: Mapping[str, np.ndarray], make: Callable[[Row], Any]) -> list[Any]:
    names = list(cols)
    lists = [cols[k].tolist() for k in names]
    return [make(dict(zip(names, values, strict=True))) for values in zip(*lists, strict=True)]


def decisions_from(cols: Mapping[str, np.ndarray]) -> list[Proposal]:
    """Proposals from the decisions columns (each ``(n,)``)."""
    return _records(
        cols,
        lambda r: Proposal(
            step=r["step"],
            instrument=str(r["instrument"]),
            modality=str(r["modality"]),
            location=Location(r["row"], r["col"]),
            policy=str(r["policy"]),
            score=r["score"],
            expected_cost=r["expected_cost"],
            model_version=r["model_version"],
            predicted_mean=r["predicted_mean"],
            predicted_std=r["predicted_std"],
            t_decided=r["t_decided"],
            params=json.loads(r.get("params") or "{}"),
            n_known=r.get("n_known", -1),
        ),
    )


def fits_from(cols: Mapping[str, np.ndarray]) -> list[FitRecord]:
    """Fit records from the fits columns (each ``(n,)``)."""
    return _records(
        cols,
        lambda r: FitRecord(
            version=r["version"],
            step=r["step"],
            n_train=r["n_train"],
            loss=r["loss"],
            seconds=r["seconds"],
            hyperparameters=json.loads(r["hyperparameters"]),
        ),
    )


def interventions_from(cols: Mapping[str, np.ndarray]) -> list[Intervention]:
    """Interventions from the interventions columns (each ``(n,)``)."""
    return _records(
        cols,
        lambda r: Intervention(
            kind=str(r["kind"]),
            payload=json.loads(r["payload"]),
            step=r["step"],
            who=str(r["who"]),
            why=str(r["why"]),
            t=r["t"],
        ),
    )
