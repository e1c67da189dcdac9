"""Creating, checking and repairing the on-disk layout of a trace (see ``docs/trace.md``)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from coscope.errors import StoreError
from coscope.storage import digests
from coscope.storage.columns import Column, ColumnSpec, atomic_write, create_column, read_json
from coscope.storage.tables import TABLES, to_json
from coscope.types import SCHEMA_VERSION, ModalityInfo

MARKER = "coscope experimental trace"
"""Value of the root attribute ``coscope``; identifies a trace."""

TABLE_CHUNK_ROWS = 1024
SIGNAL_CHUNK_BYTES = 128 * 1024
SIGNAL_STEP = ColumnSpec("step", "int", "decision step of each signal row (coordinate)")
SIGNAL = ColumnSpec("signal", "float", "full signal of each measurement of this modality")
_RESERVED = {"step", "signal"}


def signal_chunk_rows(length: int) -> int:
    """Rows per chunk of a ``(n, L)`` signal array: ~128 KiB chunks, 16 to 1024 rows."""
    return int(min(1024, max(16, SIGNAL_CHUNK_BYTES // (8 * max(length, 1)))))


def _check_name(name: str, what: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or name.startswith("__")
        or name
        in {
            ".",
            "..",
        }
    ):
        raise StoreError(
            f"{what} {name!r} cannot name a Zarr node: use a non-empty name without '/' "
            "that does not start with '__'"
        )


def _check_modalities(modalities: Mapping[str, ModalityInfo]) -> None:
    if not modalities:
        raise StoreError("modalities is empty: a trace needs at least one ModalityInfo")
    for key, info in modalities.items():
        if not isinstance(info, ModalityInfo) or info.name != key:
            raise StoreError(f"modalities[{key!r}] must be a ModalityInfo named {key!r}")
        _check_name(key, "modality")
        _check_name(info.axis_name, f"axis_name of modality {key!r}")
        if info.axis_name in _RESERVED:
            raise StoreError(
                f"axis_name {info.axis_name!r} of modality {key!r} is reserved: rename the axis"
            )
        axis = np.asarray(info.axis)
        if axis.ndim != 1 or axis.shape[0] < 1 or not np.all(np.isfinite(axis)):
            raise StoreError(
                f"the axis of modality {key!r} must be a non-empty 1-D array of finite numbers"
            )


def root_attributes(
    campaign: Mapping[str, Any],
    modalities: Mapping[str, ModalityInfo],
    sample_shape: tuple[int, int],
) -> dict[str, Any]:
    """The root attributes of a new, empty trace."""
    to_json(dict(campaign), "campaign")
    try:
        shape = [int(s) for s in sample_shape]
    except (TypeError, ValueError):
        shape = []
    if len(shape) != 2 or min(shape) < 1:
        raise StoreError(f"sample_shape must be two positive integers (H, W), got {sample_shape}")
    attrs: dict[str, Any] = {
        "coscope": MARKER,
        "schema_version": SCHEMA_VERSION,
        "campaign": dict(campaign),
        "sample_shape": shape,
        "modalities": [
            {
                "name": info.name,
                "axis_name": info.axis_name,
                "axis_units": info.axis_units,
                "signal_units": info.signal_units,
                "length": info.length,
            }
            for info in modalities.values()
        ],
        "counts": {
            **{t.name: 0 for t in TABLES},
            "signals": {name: 0 for name in modalities},
        },
        "digests": {t.name: digests.EMPTY for t in TABLES},
        "state": {},
    }
    attrs["header"] = digests.header_digest(attrs)
    return attrs


def build(
    path: Path,
    campaign: Mapping[str, Any],
    modalities: Mapping[str, ModalityInfo],
    sample_shape: tuple[int, int],
) -> None:
    """Write a new empty trace at ``path``: built in a sibling folder, then renamed into place.

    A crash during creation therefore never leaves a half-built trace at ``path``.
    """
    _check_modalities(modalities)
    attrs = root_attributes(campaign, modalities, sample_shape)
    if (path / "zarr.json").exists():
        raise StoreError(
            f"an experimental trace already exists at {path}: open it with mode 'a' to resume, "
            "or choose a new path"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise StoreError(f"{path} already exists and is not empty: choose a new trace path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.creating"
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=3, attributes=attrs)
        for table in TABLES:
            group = root.create_group(table.name)
            for spec in table.columns:
                create_column(group, spec, table.dim, chunk_rows=TABLE_CHUNK_ROWS)
        signals = root.create_group("signals")
        for info in modalities.values():
            group = signals.create_group(info.name, attributes={"modality": info.name})
            group.create_array(
                info.axis_name,
                data=np.asarray(info.axis, dtype="<f8"),
                compressors=None,
                dimension_names=(info.axis_name,),
                attributes={
                    "axis_name": info.axis_name,
                    "units": info.axis_units,
                    "signal_units": info.signal_units,
                },
            )
            create_column(group, SIGNAL_STEP, "step", chunk_rows=TABLE_CHUNK_ROWS)
            create_column(
                group,
                SIGNAL,
                "step",
                chunk_rows=signal_chunk_rows(info.length),
                row_shape=(info.length,),
                extra_dims=(info.axis_name,),
                attrs={"units": info.signal_units, "axis": info.axis_name},
            )
        os.rename(tmp, path)
    except OSError as exc:
        raise StoreError(f"could not create the experimental trace at {path} ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_root(path: Path) -> dict[str, Any]:
    """The root ``zarr.json`` of the trace at ``path``, checked to be a readable trace."""
    if not path.exists():
        raise StoreError(f"no experimental trace at {path}: run `coscope run SPEC` first")
    if not (path / "zarr.json").is_file():
        raise StoreError(
            f"{path} is not a coscope experimental trace (it has no zarr.json): check the path"
        )
    doc = read_json(path / "zarr.json", path)
    attrs = doc.get("attributes")
    if doc.get("node_type") != "group" or not isinstance(attrs, dict):
        raise StoreError(f"{path} is not a coscope experimental trace: check the path")
    if attrs.get("coscope") != MARKER:
        raise StoreError(
            f"{path} is a Zarr store but not a coscope experimental trace: check the path"
        )
    version = attrs.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise StoreError(f"the experimental trace at {path} is corrupt: bad schema_version")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the experimental trace at {path} has schema_version {version}, newer than this "
            f"coscope supports ({SCHEMA_VERSION}): upgrade coscope to read it"
        )
    try:
        counts = attrs["counts"]
        ok = all(isinstance(counts[t.name], int) for t in TABLES) and isinstance(
            counts["signals"], dict
        )
        ok = ok and isinstance(attrs["modalities"], list) and isinstance(attrs["state"], dict)
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise StoreError(f"the experimental trace at {path} is corrupt: root attributes damaged")
    return doc


ADDED_IN = {("decisions", "params"): 2, ("decisions", "n_known"): 2}
"""Columns added after schema version 1: (table, column) -> the version that added it."""
NEUTRAL = {("decisions", "params"): "{}", ("decisions", "n_known"): -1}
"""What an added column holds for the rows written before it existed."""


def columns_of(version: int) -> dict[str, list[ColumnSpec]]:
    """Column schemas per table in a trace of schema ``version``."""
    return {
        t.name: [c for c in t.columns if ADDED_IN.get((t.name, c.name), 1) <= version]
        for t in TABLES
    }


def upgrade(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Bring an older trace to :data:`SCHEMA_VERSION` in place (caller holds the writer lock).

    Each added column is (re)created empty and filled with its :data:`NEUTRAL` value for
    every committed row; the root is rewritten with the new
    version last, so a crash midway leaves an old-version trace that upgrades again.

    Returns:
        The new root document.
    """
    version = int(doc["attributes"]["schema_version"])
    counts = doc["attributes"]["counts"]
    root = zarr.open_group(path, mode="r+", zarr_format=3)
    for table in TABLES:
        for spec in table.columns:
            if ADDED_IN.get((table.name, spec.name), 1) <= version:
                continue
            shutil.rmtree(path / table.name / spec.name, ignore_errors=True)
            group = root[table.name]
            if not isinstance(group, zarr.Group):
                raise StoreError(
                    f"'{path / table.name}' is not a table group: the trace is damaged."
                )
            create_column(group, spec, table.dim, chunk_rows=TABLE_CHUNK_ROWS)
            column = Column(path, f"{table.name}/{spec.name}", spec.kind)
            for _ in range(int(counts[table.name])):
                column.append(NEUTRAL[(table.name, spec.name)])
            column.finish()
    new = {**doc, "attributes": {**doc["attributes"], "schema_version": SCHEMA_VERSION}}
    atomic_write(path / "zarr.json", json.dumps(new, indent=2, allow_nan=False))
    return new


def remove_partials(path: Path) -> None:
    """Delete temp files (``*.partial``) left by a writer killed mid-write."""
    for folder, _, files in os.walk(path):
        for name in files:
            if name.endswith(".partial"):
                Path(folder, name).unlink(missing_ok=True)
