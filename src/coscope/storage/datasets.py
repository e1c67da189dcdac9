"""Ground-truth datasets: a recorded grid of structure images and full signals, in Zarr v3.

A dataset is what a digital twin replays: per pixel of an ``H x W`` grid, one or more cheap
structure images and, per modality, the full recorded signal ``(L,)``. It is written once
(:func:`write_dataset`, all or nothing) and read back with :func:`load_dataset` or with plain
``zarr``; the layout is documented in ``docs/datasets.md``. Readers of foreign formats
(HDF5 files, NumPy arrays) live in :mod:`coscope.storage.dataset_readers`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from coscope.errors import DatasetError
from coscope.types import ModalityInfo

FORMAT_VERSION = 1
"""Value of the root attribute ``coscope_dataset`` written by this code."""

_RESERVED_AXIS_NAMES = {"signal"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A recorded ground truth over an ``H x W`` grid.

    Attributes:
        name: Dataset name.
        source: Where it came from (a file name, a URL, a citation).
        structure: Structure images by channel name, each ``H x W`` float64 (cheap,
            known up front; at least one).
        modalities: Signal description per modality name (axis ``(L,)``, units).
        signals: Recorded signals per modality, each ``H x W x L`` float64.
        pixel_size_um: Pixel pitch, micrometres.
        units: Units of each structure channel (optional, by channel name).
        space: What the grid is, as plain data (root attribute ``space``): ``{}`` for a
            pixel grid, ``{"kind": "table", "features": [...], "targets": [...]}`` for a
            table of candidates (``N x 1``, see ``docs/spaces.md``), ``{"kind": "mask"}`` for
            a candidate mask (one structure channel ``mask``).
    """

    name: str
    source: str
    structure: dict[str, np.ndarray] = field(repr=False)
    modalities: dict[str, ModalityInfo] = field(default_factory=dict)
    signals: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    pixel_size_um: float = 1.0
    units: dict[str, str] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(H, W)`` (of the first structure channel)."""
        first = next(iter(self.structure.values()))
        return int(first.shape[0]), int(first.shape[1])


def _check_name(name: object, what: str) -> None:
    ok = isinstance(name, str) and name and "/" not in name and not name.startswith("__")
    if not ok or name in {".", ".."}:
        raise DatasetError(
            f"{what} {name!r} cannot name a Zarr node: use a non-empty name without '/' "
            "that does not start with '__'."
        )


def _check_finite(array: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"{what} has {int(bad.sum())} non-finite value(s) (first at index {first}, value "
            f"{array[first]}): fill or crop them before importing."
        )


def check_dataset(ds: Dataset) -> None:
    """Raise :class:`DatasetError` (one sentence) unless ``ds`` is a consistent dataset.

    Checks: at least one structure channel; every channel ``H x W`` with the same ``H, W``;
    every signal ``H x W x L`` with ``L`` the length of its modality's axis; a signal for
    every modality and a modality for every signal; names usable as Zarr nodes; every value
    finite; ``pixel_size_um > 0``.
    """
    _check_name(ds.name, "dataset name")
    if not ds.structure:
        raise DatasetError(
            f"dataset {ds.name!r} has no structure channel: give at least one (H, W) image."
        )
    shape: tuple[int, ...] | None = None
    for channel, image in ds.structure.items():
        _check_name(channel, "structure channel")
        arr = np.asarray(image)
        if arr.ndim != 2 or min(arr.shape) < 1 or (shape is not None and arr.shape != shape):
            wanted = "a non-empty (H, W) image" if shape is None else f"shape {shape}"
            raise DatasetError(
                f"structure channel {channel!r} has shape {arr.shape}: give {wanted} like the "
                "other channels."
            )
        shape = arr.shape
        _check_finite(arr, f"structure channel {channel!r}")
    assert shape is not None
    if set(ds.modalities) != set(ds.signals):
        raise DatasetError(
            f"modalities {sorted(ds.modalities)} and signals {sorted(ds.signals)} differ: give "
            "one (H, W, L) signal array per modality."
        )
    for name, info in ds.modalities.items():
        _check_name(name, "modality")
        if not isinstance(info, ModalityInfo) or info.name != name:
            raise DatasetError(f"modalities[{name!r}] must be a ModalityInfo named {name!r}.")
        _check_name(info.axis_name, f"axis_name of modality {name!r}")
        if info.axis_name in _RESERVED_AXIS_NAMES:
            raise DatasetError(
                f"axis_name {info.axis_name!r} of modality {name!r} is reserved: rename the axis."
            )
        axis = np.asarray(info.axis)
        if axis.ndim != 1 or axis.size < 1:
            raise DatasetError(
                f"the axis of modality {name!r} has shape {axis.shape}: give a 1-D array of L "
                "values (e.g. the voltages)."
            )
        _check_finite(axis, f"the axis of modality {name!r}")
        signal = np.asarray(ds.signals[name])
        want = (*shape, axis.size)
        if signal.shape != want:
            raise DatasetError(
                f"signal of modality {name!r} has shape {signal.shape}, expected {want} (the "
                f"structure grid x the {axis.size}-point axis): make grid and axis agree."
            )
        _check_finite(signal, f"signal of modality {name!r}")
    _check_space(ds, shape)
    if not (isinstance(ds.pixel_size_um, int | float) and np.isfinite(ds.pixel_size_um)) or (
        ds.pixel_size_um <= 0
    ):
        raise DatasetError(
            f"pixel_size_um={ds.pixel_size_um!r} is invalid: give a positive pitch in µm."
        )


def _check_space(ds: Dataset, shape: tuple[int, ...]) -> None:
    """DatasetError unless ``ds.space`` is empty, a mask, or a table matching the arrays."""
    kind = ds.space.get("kind") if ds.space else None
    if kind is None:
        return
    if kind == "mask":
        if list(ds.structure) != ["mask"]:
            raise DatasetError("a mask dataset holds exactly one structure channel, 'mask'.")
        return
    if kind != "table":
        raise DatasetError(f"space kind {kind!r} is unknown: use 'table' or 'mask' (or none).")
    features = list(ds.space.get("features", []))
    if shape[1] != 1 or not features or not set(features) <= set(ds.structure):
        raise DatasetError(
            f"a table dataset is N x 1 with its features {features} among the structure "
            f"channels {list(ds.structure)}; got shape {shape}: import the CSV again."
        )


def _root_attributes(ds: Dataset) -> dict[str, Any]:
    return {
        "coscope_dataset": FORMAT_VERSION,
        "name": ds.name,
        "source": ds.source,
        "shape": list(ds.shape),
        "pixel_size_um": float(ds.pixel_size_um),
        "structure_channels": list(ds.structure),
        "modalities": [
            {
                "name": info.name,
                "axis_name": info.axis_name,
                "axis_units": info.axis_units,
                "signal_units": info.signal_units,
            }
            for info in ds.modalities.values()
        ],
        **({"space": dict(ds.space)} if ds.space else {}),
    }


def write_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a new Zarr v3 dataset folder at ``path``; returns ``path``.

    Validates first (:func:`check_dataset`), builds everything in a hidden folder beside
    ``path`` and renames it into place, so ``path`` either holds the whole dataset or
    nothing.

    Raises:
        DatasetError: ``ds`` is invalid, ``path`` exists, or writing failed.
    """
    check_dataset(ds)
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise DatasetError(f"{path} already exists: choose another output path or delete it first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.creating"
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=3, attributes=_root_attributes(ds))
        structure = root.create_group("structure")
        for channel, image in ds.structure.items():
            structure.create_array(
                channel,
                data=np.asarray(image, dtype="<f8"),
                dimension_names=("row", "col"),
                attributes={"units": ds.units.get(channel, "")},
            )
        signals = root.create_group("signals")
        for name, info in ds.modalities.items():
            group = signals.create_group(name, attributes={"modality": name})
            group.create_array(
                info.axis_name,
                data=np.asarray(info.axis, dtype="<f8"),
                dimension_names=(info.axis_name,),
                attributes={"units": info.axis_units},
            )
            group.create_array(
                "signal",
                data=np.asarray(ds.signals[name], dtype="<f8"),
                dimension_names=("row", "col", info.axis_name),
                attributes={"units": info.signal_units, "axis": info.axis_name},
            )
        os.rename(tmp, path)
    except Exception as exc:
        raise DatasetError(
            f"could not write the dataset at {path} ({type(exc).__name__}: {exc}); nothing was "
            "written."
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _read_root(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise DatasetError(
            f"no dataset at {path}: import one with `coscope dataset import SOURCE --out {path}`."
        )
    meta = path / "zarr.json"
    if not meta.is_file():
        raise DatasetError(
            f"{path} is not a coscope dataset (it has no zarr.json): check the path."
        )
    try:
        doc = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"the dataset at {path} is corrupt: its zarr.json cannot be parsed ({exc}); "
            "import it again."
        ) from None
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    if not isinstance(attrs, dict) or "coscope_dataset" not in attrs:
        raise DatasetError(f"{path} is a Zarr store but not a coscope dataset: check the path.")
    version = attrs["coscope_dataset"]
    if not isinstance(version, int) or version < 1:
        raise DatasetError(f"the dataset at {path} is corrupt: bad coscope_dataset {version!r}.")
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"the dataset at {path} has format version {version}, newer than this coscope "
            f"reads ({FORMAT_VERSION}): upgrade coscope."
        )
    return attrs


def _array(root: zarr.Group, key: str) -> zarr.Array:
    """The array at ``key`` of a dataset (a group there makes the dataset corrupt)."""
    node = root[key]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{key!r} is a group, not an array")
    return node


def load_dataset(path: str | Path) -> Dataset:
    """Read the dataset at ``path`` (written by :func:`write_dataset`).

    Raises:
        DatasetError: One sentence when ``path`` is missing, not a dataset, or corrupt.
    """
    path = Path(path)
    attrs = _read_root(path)
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
        structure, units = {}, {}
        for channel in attrs["structure_channels"]:
            array = _array(root, f"structure/{channel}")
            structure[channel] = np.asarray(array[...], dtype=np.float64)
            units[channel] = str(array.attrs.get("units", ""))
        modalities, signals = {}, {}
        for entry in attrs["modalities"]:
            name = entry["name"]
            axis = np.asarray(_array(root, f"signals/{name}/{entry['axis_name']}")[...], np.float64)
            modalities[name] = ModalityInfo(
                name, axis, entry["axis_name"], entry["axis_units"], entry["signal_units"]
            )
            signals[name] = np.asarray(_array(root, f"signals/{name}/signal")[...], np.float64)
        ds = Dataset(
            name=attrs["name"],
            source=attrs["source"],
            structure=structure,
            modalities=modalities,
            signals=signals,
            pixel_size_um=float(attrs["pixel_size_um"]),
            units=units,
            space=dict(attrs.get("space", {})),
        )
    except Exception as exc:  # any unreadable piece means the same thing to a user
        raise DatasetError(
            f"the dataset at {path} is corrupt: {type(exc).__name__} {exc}; import it again."
        ) from None
    try:
        check_dataset(ds)
    except DatasetError as exc:
        raise DatasetError(f"the dataset at {path} is corrupt: {exc}") from None
    if list(ds.shape) != list(attrs.get("shape", [])):
        raise DatasetError(
            f"the dataset at {path} is corrupt: root shape {attrs.get('shape')} differs from "
            f"its arrays {list(ds.shape)}; import it again."
        )
    return ds


def _range(values: np.ndarray) -> str:
    return f"{float(np.min(values)):.4g} .. {float(np.max(values)):.4g}"


def describe_dataset(ds: Dataset, path: str | Path | None = None) -> str:
    """Human-readable summary: shape, channels, modalities, axis and value ranges."""
    h, w = ds.shape
    lines = [
        f"dataset {ds.name!r}" + (f" at {path}" if path else ""),
        f"  source       {ds.source}",
        *(
            [
                f"  table        {h} candidates; features {', '.join(ds.space['features'])}; "
                f"targets {', '.join(ds.space.get('targets', []))}"
            ]
            if ds.space.get("kind") == "table"
            else []
        ),
        f"  grid         {h} x {w} pixels, {ds.pixel_size_um:.4g} µm/pixel "
        f"({h * ds.pixel_size_um:.4g} x {w * ds.pixel_size_um:.4g} µm)",
        "  structure",
    ]
    for channel, image in ds.structure.items():
        unit = ds.units.get(channel, "")
        lines.append(f"    {channel:<22} {_range(image)}" + (f" {unit}" if unit else ""))
    lines.append("  modalities" + ("" if ds.modalities else "   (none: image-only dataset)"))
    for name, info in ds.modalities.items():
        lines.append(
            f"    {name:<22} L={info.length}, {info.axis_name} {_range(info.axis)} "
            f"{info.axis_units}".rstrip()
            + f"; signal {_range(ds.signals[name])} {info.signal_units}".rstrip()
        )
    return "\n".join(lines)


def freeze(ds: Dataset) -> Dataset:
    """``ds`` with every array made read-only (safe to share from a cache)."""
    arrays: list[np.ndarray] = [*ds.structure.values(), *ds.signals.values()]
    arrays += [info.axis for info in ds.modalities.values()]
    for array in arrays:
        array.flags.writeable = False
    return ds


__all__ = [
    "FORMAT_VERSION",
    "Dataset",
    "check_dataset",
    "describe_dataset",
    "freeze",
    "load_dataset",
    "write_dataset",
]
