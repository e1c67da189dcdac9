"""The experimental trace: an append-only, crash-consistent Zarr v3 store of a campaign.

One process writes (the campaign flow, mode ``"a"``); any number of processes read (mode
``"r"``) while it runs. Every append writes its rows into every array of its table, then
commits by replacing the root ``zarr.json`` whose ``counts`` attribute says how many rows of
each table are committed. Readers read only rows below those counts, so they always see a
consistent prefix; opening in ``"a"`` mode cuts back rows of an append that was torn by a
crash. Layout and rationale: ``docs/trace.md``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import zarr
from zarr.storage import LocalStore

from coscope.errors import StoreError
from coscope.storage import digests, integrity, layout
from coscope.storage.columns import Column, atomic_write
from coscope.storage.lock import LOCK_NAME, acquire_lock
from coscope.storage.tables import (
    DECISIONS,
    FITS,
    INTERVENTIONS,
    MEASUREMENTS,
    TABLES,
    Table,
    decision_row,
    decisions_from,
    fit_row,
    fits_from,
    intervention_row,
    interventions_from,
    measurement_row,
)
from coscope.storage.token import ensure_token
from coscope.types import (
    SCHEMA_VERSION,
    FitRecord,
    Intervention,
    Location,
    Measurement,
    ModalityInfo,
    Proposal,
)

Mode = Literal["r", "a"]
__all__ = ["LOCK_NAME", "Mode", "TraceStore"]


class TraceStore:
    """Handle on one experimental trace. Build it with :meth:`create` or :meth:`open`.

    Use it as a context manager (or call :meth:`close`) to release the writer lock.
    """

    def __init__(self, path: Path, mode: Mode, root_doc: dict[str, Any], lock: IO | None):
        self.path = path
        self.mode: Mode = mode
        self._doc = root_doc
        self._lock = lock
        attrs = root_doc["attributes"]
        self._zstore = LocalStore(path, read_only=True)
        self._modalities = self._load_modalities(attrs["modalities"])
        version = int(attrs["schema_version"])
        self._specs = layout.columns_of(version)
        self._columns = {
            table: {c.name: Column(path, f"{table}/{c.name}", c.kind) for c in specs}
            for table, specs in layout.columns_of(version).items()
        }
        self._signals = {
            m: (
                Column(path, f"signals/{m}/step", "int"),
                Column(path, f"signals/{m}/signal", "float"),
            )
            for m in self._modalities
        }
        self._decided: set[int] = set()
        self._measured: set[int] = set()
        self._last_step = -1
        if mode == "a":
            self._repair()
            self._decided = set(self._read(DECISIONS.name, ["step"])["step"].tolist())
            self._measured = set(self._read(MEASUREMENTS.name, ["step"])["step"].tolist())
            self._last_step = max(self._decided, default=-1)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        campaign: dict[str, Any],
        modalities: dict[str, ModalityInfo],
        sample_shape: tuple[int, int],
    ) -> TraceStore:
        """Create a new, empty trace and open it for appending.

        Args:
            path: Folder to create (must not exist, or be empty).
            campaign: JSON-serialisable description of the campaign (spec, seed, name ...),
                stored in the root attribute ``campaign``.
            modalities: Signal description of every modality, keyed by its name.
            sample_shape: ``(H, W)`` of the sample grid.

        Raises:
            StoreError: A trace or other files already exist at ``path``, or an argument is
                invalid.
        """
        path = Path(path)
        layout.build(path, campaign, modalities, sample_shape)
        os.chmod(path, 0o700)  # owner-only, with the token that signs requests to it
        ensure_token(path)
        return cls.open(path, mode="a")

    @classmethod
    def open(cls, path: str | Path, mode: Mode = "r") -> TraceStore:
        """Open an existing trace.

        Args:
            path: Folder of the trace.
            mode: ``"r"`` to read (any number of processes, also while a campaign writes),
                ``"a"`` to append (one process at a time; repairs a torn append first).

        Raises:
            StoreError: The trace is missing, not a coscope trace, corrupt, newer than this
                code, or already open for writing.
        """
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        layout.read_root(path)
        lock = acquire_lock(path) if mode == "a" else None
        try:
            doc = layout.read_root(path)  # again, now that no other writer can change it
            if mode == "a" and doc["attributes"]["schema_version"] < SCHEMA_VERSION:
                doc = layout.upgrade(path, doc)
                doc = _write_digests(path, doc)
            elif mode == "a" and "digests" not in doc["attributes"]:
                doc = _write_digests(path, doc)  # a trace made before digests existed
            if mode == "a":  # never cut rows past the counts unless the chain says so
                integrity.verify_committed(path, doc)
            return cls(path, mode, doc, lock)
        except BaseException:
            if lock is not None:
                lock.close()
            raise

    def close(self) -> None:
        """Cut every array to its committed length and release the writer lock.

        Afterwards the handle reads like one opened with mode ``"r"``.
        """
        if self.mode == "a":
            for column in self._all_columns():
                column.finish()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self.mode = "r"

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r}, mode={self.mode!r}, counts={self.counts()})"

    # -- static description -----------------------------------------------------------

    @property
    def campaign(self) -> dict[str, Any]:
        """The campaign description given at creation (a copy)."""
        return copy.deepcopy(self._doc["attributes"]["campaign"])

    def effective_campaign(self) -> dict[str, Any]:
        """The campaign description with the settings changed on later runs (``overrides``)."""
        return {**self.campaign, **self.get_attr("overrides", {})}

    @property
    def modalities(self) -> dict[str, ModalityInfo]:
        """Signal description of every modality, keyed by name."""
        return dict(self._modalities)

    @property
    def sample_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the sample grid."""
        h, w = self._doc["attributes"]["sample_shape"]
        return int(h), int(w)

    def _load_modalities(self, entries: list[dict[str, Any]]) -> dict[str, ModalityInfo]:
        out = {}
        for e in entries:
            try:
                axis = zarr.open_array(self._zstore, path=f"signals/{e['name']}/{e['axis_name']}")
                info = ModalityInfo(
                    e["name"],
                    np.asarray(axis[:], dtype=np.float64),
                    e["axis_name"],
                    e["axis_units"],
                    e["signal_units"],
                )
            except Exception as exc:  # any unreadable piece means the same thing here
                raise StoreError(
                    f"the experimental trace at {self.path} is corrupt: the axis of modality "
                    f"{e.get('name')!r} cannot be read ({exc})"
                ) from exc
            out[info.name] = info
        return out

    # -- small JSON state -------------------------------------------------------------

    def get_attr(self, key: str, default: Any = None) -> Any:
        """A value of the small JSON state (``status``, ``mlflow_run_id`` ...), or ``default``."""
        return copy.deepcopy(self._attrs()["state"].get(key, default))

    def set_attr(self, key: str, value: Any) -> None:
        """Set one value of the small JSON state; written atomically.

        Raises:
            StoreError: Opened read-only, or ``value`` is not JSON-serialisable.
        """
        self._require_writer()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"attribute {key!r} must be JSON-serialisable ({exc})") from exc
        state = {**self._doc["attributes"]["state"], str(key): copy.deepcopy(value)}
        self._write_root(state=state)

    # -- appends ----------------------------------------------------------------------

    def append_decision(self, p: Proposal) -> None:
        """Append one decision. Steps must be strictly increasing.

        Raises:
            StoreError: Read-only, step not increasing, unknown modality, location outside
                the sample, or a field of the wrong type; nothing is written.
        """
        self._require_writer()
        row = decision_row(p)
        if row["step"] <= self._last_step:
            raise StoreError(
                f"decision step {row['step']} is not after the last decision step "
                f"{self._last_step}: decision steps must strictly increase"
            )
        self._check_modality(row["modality"])
        self._check_location(p.location)
        self._commit(DECISIONS, row, None)
        self._decided.add(row["step"])
        self._last_step = row["step"]

    def append_measurement(self, m: Measurement) -> None:
        """Append one measurement and its full signal (committed together).

        Raises:
            StoreError: Read-only, no decision with this step, step already measured,
                unknown modality, location outside the sample, or a signal that is not a
                finite float array of the modality's length ``(L,)``; nothing is written.
        """
        self._require_writer()
        row = measurement_row(m)
        step = row["step"]
        if step not in self._decided:
            raise StoreError(
                f"measurement step {step} has no decision: append the Proposal for step "
                f"{step} before its measurement"
            )
        if step in self._measured:
            raise StoreError(f"step {step} is already measured: a step is measured only once")
        info = self._check_modality(row["modality"])
        self._check_location(m.location)
        try:
            signal = np.asarray(m.signal, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the signal of step {step} is not numeric ({exc})") from exc
        if signal.shape != (info.length,):
            raise StoreError(
                f"the signal of step {step} has shape {signal.shape}, but modality "
                f"{info.name!r} has {info.length} axis values: expected shape ({info.length},)"
            )
        if not np.all(np.isfinite(signal)):
            raise StoreError(
                f"the signal of step {step} contains NaN or inf: signals must be finite"
            )
        self._commit(MEASUREMENTS, row, (info.name, step, signal))
        self._measured.add(step)

    def append_fit(self, r: FitRecord) -> None:
        """Append one fitted-surrogate record (hyperparameters stored as JSON)."""
        self._require_writer()
        self._commit(FITS, fit_row(r), None)

    def append_intervention(self, i: Intervention) -> None:
        """Append one human intervention (payload stored as JSON)."""
        self._require_writer()
        self._commit(INTERVENTIONS, intervention_row(i), None)

    # -- readers ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Committed rows per table: decisions, measurements, fits, interventions."""
        counts = self._attrs()["counts"]
        return {t.name: int(counts[t.name]) for t in TABLES}

    def decisions(self) -> list[Proposal]:
        """All committed decisions, in order."""
        return decisions_from(self._read(DECISIONS.name))

    def fits(self) -> list[FitRecord]:
        """All committed fit records, in order."""
        return fits_from(self._read(FITS.name))

    def interventions(self) -> list[Intervention]:
        """All committed interventions, in order."""
        return interventions_from(self._read(INTERVENTIONS.name))

    def measurements(self, modality: str | None = None) -> list[Measurement]:
        """Committed measurements with their full signals, in commit order.

        Args:
            modality: Only this modality (all when ``None``).

        Returns:
            Measurements; each ``signal`` is a float64 array of shape ``(L,)``.
        """
        attrs = self._attrs()
        cols = self._read(MEASUREMENTS.name, counts=attrs["counts"])
        names = [modality] if modality is not None else list(self._modalities)
        if modality is not None:
            self._check_modality(modality)
        signals = {}
        for name in names:
            n = int(attrs["counts"]["signals"].get(name, 0))
            signals[name] = (
                self._read_array(f"signals/{name}/step", n),
                self._read_array(f"signals/{name}/signal", n),
            )
        out, seen = [], dict.fromkeys(names, 0)
        rows = zip(*(cols[c.name].tolist() for c in MEASUREMENTS.columns), strict=True)
        for step, instrument, mod, r, c, cost, t0, t1 in rows:
            if mod not in signals:
                continue
            steps, sig = signals[mod]
            k = seen[mod]
            if k >= len(steps) or int(steps[k]) != step:
                raise StoreError(
                    f"the experimental trace at {self.path} is corrupt: the signal rows of "
                    f"modality {mod!r} do not match its measurements"
                )
            seen[mod] = k + 1
            out.append(
                Measurement(
                    step, str(instrument), str(mod), Location(r, c), sig[k].copy(), cost, t0, t1
                )
            )
        return out

    def measured_steps(self) -> set[int]:
        """Steps that have a committed measurement."""
        if self.mode == "a":
            return set(self._measured)
        return set(self._read(MEASUREMENTS.name, ["step"])["step"].tolist())

    def retired_steps(self) -> set[int]:
        """Decisions the failure policy retired: a ``failed_measurement`` intervention with
        ``retired: true`` (:mod:`coscope.campaign.failures`); never re-issued."""
        return {
            int(i.payload["step"])
            for i in self.interventions()
            if i.kind == "failed_measurement" and i.payload.get("retired")
        }

    def pending_decisions(self) -> list[Proposal]:
        """Committed decisions without a measurement yet (to re-issue on resume), in order;
        retired ones (:meth:`retired_steps`) are not pending."""
        counts = self._attrs()["counts"]  # one snapshot for both tables
        measured = set(self._read(MEASUREMENTS.name, ["step"], counts)["step"].tolist())
        done = measured | self.retired_steps()
        return [
            p
            for p in decisions_from(self._read(DECISIONS.name, counts=counts))
            if p.step not in done
        ]

    # -- internals --------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        if self.mode == "r":  # another process may have committed since
            self._doc = layout.read_root(self.path)
        return self._doc["attributes"]

    def _read_array(self, path: str, n: int) -> np.ndarray:
        try:
            array = zarr.open_array(self._zstore, path=path, mode="r", zarr_format=3)
            shape = array.shape[0]
            rows = np.asarray(array[:n]) if shape >= n else None
        except Exception as exc:  # any unreadable chunk or metadata means the same here
            raise StoreError(
                f"the experimental trace at {self.path} is corrupt: {path} cannot be read "
                f"({type(exc).__name__}); run `coscope check {self.path}`"
            ) from None
        if rows is None:
            raise StoreError(
                f"the experimental trace at {self.path} is corrupt: {path} has "
                f"{shape} rows but {n} are committed; run `coscope check {self.path}`"
            )
        return rows

    def _read(
        self, table: str, names: list[str] | None = None, counts: dict[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        n = int((counts or self._attrs()["counts"])[table])
        names = names or list(self._columns[table])
        return {name: self._read_array(f"{table}/{name}", n) for name in names}

    def _require_writer(self) -> None:
        if self.mode != "a":
            raise StoreError(
                f"the experimental trace at {self.path} is open read-only: open it with mode 'a'"
            )

    def _check_modality(self, name: str) -> ModalityInfo:
        if name not in self._modalities:
            raise StoreError(
                f"unknown modality {name!r}: this trace has {sorted(self._modalities)}"
            )
        return self._modalities[name]

    def _check_location(self, loc: Location) -> None:
        h, w = self.sample_shape
        if not (0 <= loc.row < h and 0 <= loc.col < w):
            raise StoreError(f"location {loc} is outside the {h} x {w} sample grid")

    def _commit(self, table: Table, row: dict[str, Any], signal: tuple | None) -> None:
        """Write one record's rows into every array, then commit with one root write."""
        counts = copy.deepcopy(self._doc["attributes"]["counts"])
        heads = dict(self._doc["attributes"]["digests"])
        columns = self._columns[table.name]
        payload = digests.row_bytes(self._specs[table.name], [row[name] for name in columns])
        try:
            for name, column in columns.items():
                column.append(row[name])
            if signal is not None:
                modality, step, values = signal
                step_col, signal_col = self._signals[modality]
                step_col.append(step)
                signal_col.append(values)
                counts["signals"][modality] += 1
                payload += digests.signal_bytes(values)
            counts[table.name] += 1
            heads[table.name] = digests.extend(heads[table.name], payload)
            self._write_root(counts=counts, digests=heads)
        except Exception as exc:
            self._repair()
            raise StoreError(
                f"could not append to the experimental trace at {self.path} ({exc}); "
                "nothing was committed"
            ) from exc

    def _write_root(self, **updates: Any) -> None:
        doc = {**self._doc, "attributes": {**self._doc["attributes"], **updates}}
        atomic_write(self.path / "zarr.json", json.dumps(doc, indent=2, allow_nan=False))
        self._doc = doc

    def _repair(self) -> None:
        """Cut every array back to its committed length (undoes a torn append)."""
        counts = self._doc["attributes"]["counts"]
        targets = [
            (column, int(counts[table]))
            for table, columns in self._columns.items()
            for column in columns.values()
        ]
        for modality, columns in self._signals.items():
            targets += [(c, int(counts["signals"].get(modality, 0))) for c in columns]
        if sum(int(counts["signals"].get(m, 0)) for m in self._signals) != counts["measurements"]:
            raise StoreError(f"the experimental trace at {self.path} is corrupt: signal counts")
        for column, n in targets:
            if column.capacity < n:
                raise StoreError(
                    f"the experimental trace at {self.path} is corrupt: {column.path} has "
                    f"{column.capacity} rows but {n} are committed"
                )
        for column, n in targets:
            column.reset(n)
        layout.remove_partials(self.path)

    def _all_columns(self) -> list[Column]:
        cols = [c for columns in self._columns.values() for c in columns.values()]
        return cols + [c for pair in self._signals.values() for c in pair]


def _write_digests(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Compute the digests of a trace's committed rows and write them (caller holds the lock)."""
    new = integrity.with_digests(path, doc)
    atomic_write(path / "zarr.json", json.dumps(new, indent=2, allow_nan=False))
    return new
