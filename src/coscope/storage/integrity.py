"""Integrity of a trace: its digest chains, counts and invariants, checked and repaired.

:func:`check_trace` reads a trace without trusting its counts: every table's rows as far as
they are on disk, their digest chain (:mod:`coscope.storage.digests`), and the invariants of
``docs/trace.md``. Each problem becomes a :class:`Finding` — one sentence saying what is
wrong and whether ``coscope check --repair`` can fix it. Repairs never delete a committed
row: they restore counts that were rolled back (the chain says how many rows were committed),
drop rows of an append torn by a crash (rows past the committed head), remove temp files, and
write digests for a trace made before they existed. A trace whose committed bytes changed, or
whose rows were lost, is reported and left as it is (restore it from a backup).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from zarr.storage import LocalStore

from coscope.errors import StoreError
from coscope.storage import digests, layout
from coscope.storage.columns import ColumnSpec, atomic_write
from coscope.storage.invariants import Finding, invariant_findings, read_rows
from coscope.storage.lock import acquire_lock
from coscope.storage.tables import MEASUREMENTS, TABLES


@dataclass
class TableState:
    """What the chain says about one table.

    Attributes:
        name: Table name.
        counted: Rows the root's counts name.
        stored: Rows readable on disk (the shortest column; for measurements also limited by
            the signal rows).
        committed: Rows the digest chain reaches its stored head at (``None``: nowhere).
        heads: Chain heads over the readable rows (``heads[i]`` after ``i`` rows).
    """

    name: str
    counted: int
    stored: int
    committed: int | None
    heads: list[str] = field(repr=False)


@dataclass
class CheckReport:
    """Everything :func:`check_trace` found.

    Attributes:
        path: The trace.
        findings: Problems, errors first.
        repaired: What was repaired (empty unless asked to repair).
    """

    path: Path
    findings: list[Finding]
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error (warnings may remain)."""
        return not any(f.severity == "error" for f in self.findings)

    def to_json_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (``coscope check --json``)."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "findings": [
                {"severity": f.severity, "message": f.message, "repair": f.repair}
                for f in self.findings
            ],
            "repaired": list(self.repaired),
        }


def _columns(doc: dict[str, Any]) -> dict[str, list[ColumnSpec]]:
    return layout.columns_of(int(doc["attributes"]["schema_version"]))


def table_payloads(path: Path, doc: dict[str, Any], table: str) -> list[bytes]:
    """Canonical bytes of every row of ``table`` that is readable on disk.

    A measurement row's bytes end with its signal (the k-th measurement of modality m has
    row k of ``signals/m/signal``); rows stop at the first whose signal is missing.

    Raises:
        StoreError: An array of the table cannot be read.
    """
    zstore = LocalStore(path, read_only=True)
    specs = _columns(doc)[table]
    cols = [read_rows(zstore, f"{table}/{c.name}") for c in specs]
    n = min(len(c) for c in cols) if cols else 0
    lists = [c[:n].tolist() for c in cols]
    rows = [list(values) for values in zip(*lists, strict=True)] if n else []
    payloads = [digests.row_bytes(specs, values) for values in rows]
    if table != MEASUREMENTS.name:
        return payloads
    names = [c.name for c in specs]
    modality_at = names.index("modality")
    signals: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    out = []
    for payload, values in zip(payloads, rows, strict=True):
        modality = str(values[modality_at])
        if modality not in signals:
            try:
                signals[modality] = read_rows(zstore, f"signals/{modality}/signal")
            except StoreError:
                break
        k = seen.get(modality, 0)
        if k >= len(signals[modality]):
            break
        seen[modality] = k + 1
        out.append(payload + digests.signal_bytes(signals[modality][k]))
    return out


def table_state(path: Path, doc: dict[str, Any], table: str) -> TableState:
    """Where the digest chain of ``table`` reaches its stored head."""
    attrs = doc["attributes"]
    heads = digests.chain(table_payloads(path, doc, table))
    head = attrs["digests"][table]
    counted = int(attrs["counts"][table])
    committed: int | None
    if counted < len(heads) and heads[counted] == head:
        committed = counted
    else:
        committed = next((i for i, h in enumerate(heads) if h == head), None)
    return TableState(table, counted, len(heads) - 1, committed, heads)


def with_digests(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with digests computed from its committed rows (a trace made before them).

    Raises:
        StoreError: Fewer rows are readable than the counts name.
    """
    attrs = copy.deepcopy(doc["attributes"])
    heads = {}
    for table in TABLES:
        chain = digests.chain(table_payloads(path, doc, table.name))
        n = int(attrs["counts"][table.name])
        if n >= len(chain):
            raise StoreError(
                f"the experimental trace at {path} is corrupt: {table.name} has "
                f"{len(chain) - 1} readable rows but {n} are committed"
            )
        heads[table.name] = chain[n]
    attrs["digests"] = heads
    attrs["header"] = digests.header_digest(attrs)
    return {**doc, "attributes": attrs}


def verify_committed(path: Path, doc: dict[str, Any]) -> None:
    """StoreError unless every table's chain reaches its head exactly at its count.

    Run before a writer cuts rows past the counts (a torn append), so that counts rolled back
    by hand or by a bad copy can never make it delete committed rows.
    """
    attrs = doc["attributes"]
    hint = (
        f"run `coscope check {path}` to see what is wrong and `coscope check {path} --repair` "
        "to restore what can be restored"
    )
    if attrs.get("header") != digests.header_digest(attrs):
        raise StoreError(
            f"the experimental trace at {path} is corrupt: its campaign, sample shape or "
            f"modalities changed after it was created; {hint}"
        )
    for table in TABLES:
        try:
            state = table_state(path, doc, table.name)
        except StoreError as exc:
            raise StoreError(
                f"the experimental trace at {path} is corrupt: {exc}; {hint}"
            ) from None
        if state.committed != state.counted:
            raise StoreError(
                f"the experimental trace at {path} is corrupt: the {table.name} rows on disk do "
                f"not match what was committed ({_what(state)}); {hint}"
            )


def _what(state: TableState) -> str:
    if state.committed is None:
        if state.stored < state.counted:
            return f"{state.counted} rows are counted but only {state.stored} are stored"
        return "a committed row was changed after it was written"
    if state.committed > state.counted:
        return f"the counts say {state.counted} rows but {state.committed} were committed"
    return f"the counts say {state.counted} rows but only {state.committed} were committed"


def check_trace(path: str | Path, *, repair: bool = False) -> CheckReport:
    """Check (and, with ``repair``, fix what can be fixed in) the trace at ``path``.

    Repairing takes the writer lock: a trace a running campaign writes is only checked.

    Raises:
        StoreError: ``path`` is not a trace at all (missing, not coscope's, unreadable root).
    """
    path = Path(path)
    doc = layout.read_root(path)
    report = CheckReport(path, [])
    lock = None
    if repair:
        lock = acquire_lock(path)
    try:
        _check(path, doc, report, repair)
    finally:
        if lock is not None:
            lock.close()
    report.findings.sort(key=lambda f: f.severity != "error")
    return report


def _check(path: Path, doc: dict[str, Any], report: CheckReport, repair: bool) -> None:
    attrs = doc["attributes"]
    add = report.findings.append
    if "digests" not in attrs:
        add(Finding("warning", "the trace has no digests (made before they existed)", "write them"))
        if repair:
            try:
                doc = with_digests(path, doc)
            except StoreError as exc:
                add(Finding("error", str(exc)))
                return
            atomic_write(path / "zarr.json", json.dumps(doc, indent=2, allow_nan=False))
            report.repaired.append("wrote digests of the committed rows")
            attrs = doc["attributes"]
        else:
            doc = with_digests(path, doc)
            attrs = doc["attributes"]
    if attrs.get("header") != digests.header_digest(attrs):
        add(
            Finding(
                "error",
                "the campaign, sample shape or modalities changed after the trace was created",
            )
        )
    counts = copy.deepcopy(attrs["counts"])
    committed: dict[str, int] = {}
    for table in TABLES:
        try:
            state = table_state(path, doc, table.name)
        except StoreError as exc:
            add(Finding("error", f"{table.name}: {exc}"))
            return
        committed[table.name] = min(state.counted, state.stored)
        if state.committed is None:
            add(Finding("error", f"{table.name}: {_what(state)}"))
        elif state.committed != state.counted:
            fix = f"set the {table.name} count to {state.committed}"
            add(Finding("error", f"{table.name}: {_what(state)}", fix))
            counts[table.name] = state.committed
            committed[table.name] = state.committed
        elif state.stored > state.counted:
            add(
                Finding(
                    "warning",
                    f"{table.name}: {state.stored - state.counted} uncommitted row(s) of an "
                    "append torn by a crash",
                    "left for the next writer to cut",
                )
            )
    report.findings.extend(invariant_findings(path, doc, committed))
    partials = [p for p in path.rglob("*.partial")]
    if partials:
        add(
            Finding(
                "warning", f"{len(partials)} temp file(s) of an interrupted write", "delete them"
            )
        )
    if not repair:
        return
    if counts != attrs["counts"]:
        counts["signals"] = _signal_counts(path, doc, counts["measurements"])
        new = {**doc, "attributes": {**attrs, "counts": counts}}
        atomic_write(path / "zarr.json", json.dumps(new, indent=2, allow_nan=False))
        report.repaired.append("restored the counts the digest chains name")
    if partials:
        layout.remove_partials(path)
        report.repaired.append(f"deleted {len(partials)} temp file(s)")


def _signal_counts(path: Path, doc: dict[str, Any], n_measurements: int) -> dict[str, int]:
    """Signal rows per modality among the first ``n_measurements`` measurements."""
    zstore = LocalStore(path, read_only=True)
    modality = read_rows(zstore, "measurements/modality")[:n_measurements].tolist()
    names = [m["name"] for m in doc["attributes"]["modalities"]]
    return {name: sum(1 for m in modality if str(m) == name) for name in names}
