"""The invariants of ``docs/trace.md``, checked over rows read from disk (``coscope check``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.storage import LocalStore

from coscope.errors import StoreError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem found in a trace.

    Attributes:
        severity: ``"error"`` (the trace is not what was committed) or ``"warning"`` (left
            over by a crash; harmless, tidied by a repair or the next writer).
        message: One sentence: what is wrong, where.
        repair: What ``--repair`` does about it, or ``None`` when it cannot be repaired here.
    """

    severity: Severity
    message: str
    repair: str | None = None


def read_rows(zstore: LocalStore, path: str) -> np.ndarray:
    """Every row on disk of the array at ``path`` (StoreError when it cannot be read)."""
    try:
        array = zarr.open_array(zstore, path=path, mode="r", zarr_format=3)
        return np.asarray(array[:])
    except Exception as exc:  # any unreadable piece of an array means the same here
        raise StoreError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None


def invariant_findings(path: Path, doc: dict[str, Any], n: dict[str, int]) -> list[Finding]:
    """Invariants of ``docs/trace.md`` over the first ``n[table]`` rows of every table."""
    zstore = LocalStore(path, read_only=True)
    attrs = doc["attributes"]
    h, w = (int(v) for v in attrs["sample_shape"])
    modalities = {m["name"]: int(m["length"]) for m in attrs["modalities"]}
    found: list[Finding] = []

    def cols(table: str, names: Sequence[str]) -> dict[str, np.ndarray]:
        return {c: read_rows(zstore, f"{table}/{c}")[: n[table]] for c in names}

    dec = cols("decisions", ["step", "modality", "row", "col"])
    mea = cols("measurements", ["step", "modality", "row", "col"])
    steps = dec["step"].astype(np.int64)
    if len(steps) > 1 and not np.all(np.diff(steps) > 0):
        found.append(Finding("error", "decision steps do not strictly increase"))
    for name, table in (("decision", dec), ("measurement", mea)):
        rows, cols_ = table["row"].astype(np.int64), table["col"].astype(np.int64)
        off = np.flatnonzero((rows < 0) | (rows >= h) | (cols_ < 0) | (cols_ >= w))
        if off.size:
            found.append(
                Finding(
                    "error",
                    f"{off.size} {name} location(s) lie off the {h} x {w} sample grid (first: "
                    f"row {int(rows[off[0]])}, col {int(cols_[off[0]])} at {name} {int(off[0])})",
                )
            )
        unknown = sorted({str(m) for m in table["modality"]} - set(modalities))
        if unknown:
            found.append(Finding("error", f"{name}s name unknown modalities {unknown}"))
    measured = mea["step"].astype(np.int64)
    if len(set(measured.tolist())) != len(measured):
        found.append(Finding("error", "a decision step is measured more than once"))
    orphans = sorted(set(measured.tolist()) - set(steps.tolist()))
    if orphans:
        found.append(
            Finding(
                "error",
                f"{len(orphans)} measurement(s) have no decision (first: step {orphans[0]})",
            )
        )
    for modality, length in modalities.items():
        rows_m = [
            int(s) for s, m in zip(measured, mea["modality"], strict=True) if str(m) == modality
        ]
        try:
            sig = read_rows(zstore, f"signals/{modality}/signal")[: len(rows_m)]
            sig_steps = read_rows(zstore, f"signals/{modality}/step")[: len(rows_m)]
        except StoreError as exc:
            found.append(Finding("error", f"the signals of {modality!r}: {exc}"))
            continue
        if sig.ndim != 2 or sig.shape[1] != length:
            found.append(
                Finding("error", f"the signals of {modality!r} do not have length {length}")
            )
            continue
        if [int(s) for s in sig_steps] != rows_m:
            found.append(
                Finding("error", f"the signal rows of {modality!r} do not match its measurements")
            )
        bad = np.flatnonzero(~np.all(np.isfinite(sig), axis=1))
        if bad.size:
            found.append(
                Finding(
                    "error",
                    f"{bad.size} signal(s) of {modality!r} hold NaN or inf "
                    f"(first: step {rows_m[bad[0]]})",
                )
            )
    space = attrs.get("state", {}).get("space")
    if isinstance(space, dict) and space.get("kind") == "box":
        found += box_findings(space, cols("decisions", ["step", "row", "col", "params"]))
    for table_name, column in (("fits", "hyperparameters"), ("interventions", "payload")):
        for i, text in enumerate(cols(table_name, [column])[column].tolist()):
            try:
                json.loads(str(text))
            except ValueError:
                found.append(Finding("error", f"{table_name} row {i}: {column} is not valid JSON"))
                break
    found += approval_findings(cols("interventions", ["kind", "payload"]), dec, mea)
    return found


APPROVAL_ANSWERS = ("approved", "modified", "rejected", "timed_out")
"""Answers of an ``approval`` row (docs/approval.md); the gate's own reader is
:mod:`coscope.campaign.approval`."""


def approval_findings(
    interventions: dict[str, np.ndarray],
    decisions: dict[str, np.ndarray],
    measurements: dict[str, np.ndarray],
) -> list[Finding]:
    """The approval gate's invariants: every answer names a stored decision; a decision is
    released or dropped at most once; a dropped one (rejected, skipped) is never measured; a
    modified one is measured where the answer said."""
    found: list[Finding] = []
    steps = {int(s) for s in decisions["step"]}
    measured = {
        int(s): (int(r), int(c))
        for s, r, c in zip(
            measurements["step"], measurements["row"], measurements["col"], strict=True
        )
    }
    decided: dict[int, dict[str, Any]] = {}
    for i, (kind, text) in enumerate(
        zip(interventions["kind"], interventions["payload"], strict=True)
    ):
        if str(kind) != "approval":
            continue
        try:
            payload = json.loads(str(text))
        except ValueError:
            continue  # named above
        if not isinstance(payload, dict) or "rejected" in payload:
            continue  # a refused answer changed nothing
        step, answer = payload.get("step"), payload.get("answer")
        if not isinstance(step, int) or answer not in APPROVAL_ANSWERS or step not in steps:
            found.append(
                Finding("error", f"interventions row {i}: an approval answer names no decision")
            )
            continue
        closing = answer != "timed_out" or payload.get("on_timeout") == "skip"
        if not closing:
            continue
        if step in decided:
            found.append(Finding("error", f"step {step} is answered twice (interventions row {i})"))
            continue
        decided[step] = payload
    for step, payload in sorted(decided.items()):
        at = measured.get(step)
        if payload["answer"] in ("rejected", "timed_out") and at is not None:
            found.append(Finding("error", f"step {step} was {payload['answer']} but is measured"))
        where = payload.get("location")
        if payload["answer"] == "modified" and at is not None and where is not None:
            if list(at) != [int(v) for v in where]:
                found.append(
                    Finding("error", f"step {step} is measured at {at}, not where it was modified")
                )
    return found


def box_findings(space: dict[str, Any], dec: dict[str, np.ndarray]) -> list[Finding]:
    """A box campaign's decisions (``docs/spaces.md``): decision ``k`` sits at ``(k, 0)`` and
    its params carry ``x``, one finite coordinate per dimension inside the box's bounds.

    Args:
        space: The trace's ``space`` description (``names``, ``lo``, ``hi``).
        dec: The decisions' ``step``, ``row``, ``col`` and ``params`` columns.
    """
    try:
        lo = np.asarray(space["lo"], dtype=np.float64)
        hi = np.asarray(space["hi"], dtype=np.float64)
        names = [str(n) for n in space["names"]]
    except (KeyError, TypeError, ValueError):
        return [Finding("error", "the trace's box description lacks names or bounds")]
    found: list[Finding] = []
    steps = dec["step"].astype(np.int64)
    off = np.flatnonzero((dec["row"].astype(np.int64) != steps) | (dec["col"] != 0))
    if off.size:
        found.append(
            Finding(
                "error",
                f"{off.size} box decision(s) are not at their slot (step, 0) (first: step "
                f"{int(steps[off[0]])})",
            )
        )
    for step, text in zip(steps.tolist(), dec["params"].tolist(), strict=True):
        try:
            point = np.asarray(json.loads(str(text)).get("x"), dtype=np.float64)
        except (ValueError, TypeError, AttributeError):
            point = np.full(0, np.nan)
        ok = point.shape == lo.shape and bool(np.isfinite(point).all())
        if not ok or bool(np.any((point < lo) | (point > hi))):
            found.append(
                Finding(
                    "error",
                    f"box decision step {step} does not carry a point of {len(names)} "
                    f"coordinates inside the box in params['x'] (first such decision)",
                )
            )
            break
    return found
