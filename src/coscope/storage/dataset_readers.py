"""Readers that turn foreign files into a :class:`~coscope.storage.datasets.Dataset`.

* :func:`read_beps_h5` — a pyNSID/sidpy BEPS spectral image (``BEPS_PTO_50x50.h5``);
* :func:`read_pfm_h5` — pyNSID/sidpy PFM image files (``Measurement_000/Channel_*``);
* :func:`read_arrays` (in :mod:`coscope.storage.dataset_arrays`) — the user's own grid as
  NumPy arrays (``.npz`` or ``.npy`` files).

:func:`import_dataset` picks the reader (by extension and content), optionally turns
structure channels into one-point modalities (:func:`promote_channels`) and writes the
result. Every problem is a :class:`~coscope.errors.DatasetError` of one sentence, raised
before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from coscope.errors import CoscopeError, DatasetError
from coscope.scalarizers import scalarize
from coscope.storage.dataset_arrays import read_arrays
from coscope.storage.dataset_tables import read_mask, read_table_csv
from coscope.storage.datasets import Dataset, check_dataset, write_dataset
from coscope.types import ModalityInfo

Format = Literal["auto", "beps-h5", "pfm-h5", "arrays"]
FORMATS: tuple[str, ...] = ("auto", "beps-h5", "pfm-h5", "arrays", "table", "mask")

_TO_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "nm": 1e-3}
_H5_SUFFIXES = {".h5", ".hdf5", ".hdf"}
POINT_AXIS = "point"
"""Axis name of the one-point modalities made by :func:`promote_channels`."""


def _text(value: Any, default: str = "") -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return default if value is None else str(value)


def _open_h5(path: Path) -> Any:

    if not path.is_file():
        raise DatasetError(f"no file at {path}: check the SOURCE path.")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file ({exc}): check the file.") from None


def _first_array(group: Any, ndim: int) -> Any:
    """The first ``ndim``-dimensional dataset under ``group`` (HDF5 visit order), or None."""
    found: list[Any] = []
    group.visititems(lambda _, obj: found.append(obj) if getattr(obj, "ndim", 0) == ndim else None)
    return found[0] if found else None


def _pitch_um(scale: Any) -> float | None:
    """Spacing of a position dimension scale in µm, or ``None`` if it has no length units."""
    factor = _TO_UM.get(_text(scale.attrs.get("units")).strip())
    values = np.asarray(scale[()], dtype=np.float64)
    if factor is None or values.size < 2:
        return None
    step = float(np.median(np.abs(np.diff(values)))) * factor
    return step if np.isfinite(step) and step > 0 else None


def _scale(dataset: Any, dim: int, fallback: str) -> Any:
    """The dimension scale attached to ``dim`` of ``dataset``, else its sibling ``fallback``."""
    if len(dataset.dims[dim]):
        return dataset.dims[dim][0]
    if fallback in dataset.parent:
        return dataset.parent[fallback]
    raise DatasetError(
        f"{dataset.file.filename} has no {fallback!r} array for dimension {dim} of "
        f"{dataset.name}: it is not in the pyNSID/sidpy layout."
    )


def read_beps_h5(path: str | Path, *, name: str | None = None) -> Dataset:
    """Read a pyNSID/sidpy BEPS file: one hysteresis loop per pixel.

    The main dataset is the first 3-D array under ``Channel_000`` (``generic/generic`` in
    ``BEPS_PTO_50x50.h5``), dims ``(X, Y, Voltage)``; rows are its first dimension. The
    structure channels are the per-pixel ``remanent`` and ``mean`` scalarizers of the loop
    (both despike first, so SHO-fit spikes barely move them).

    Returns:
        A dataset with modality ``beps_loop`` (axis ``voltage`` in V, signal ``H x W x L``)
        and structure channels ``remanent`` and ``loop_mean`` (``H x W``).
    """
    path = Path(path)
    with _open_h5(path) as f:
        if "Channel_000" not in f:
            raise DatasetError(
                f"{path} has no Channel_000 group: it is not a BEPS file in the pyNSID layout "
                "(try --format pfm-h5 or arrays)."
            )
        main = _first_array(f["Channel_000"], 3)
        if main is None:
            raise DatasetError(
                f"{path} has no 3-D (X, Y, Voltage) array under Channel_000: it holds no "
                "spectral image to import."
            )
        loops = np.asarray(main[()], dtype=np.float64)
        voltage = np.asarray(_scale(main, 2, "Voltage")[()], dtype=np.float64)
        pitches = [p for p in (_pitch_um(_scale(main, k, n)) for k, n in ((0, "X"), (1, "Y"))) if p]
        signal_units = _text(main.attrs.get("units"), "a.u.") or "a.u."
        axis_units = _text(_scale(main, 2, "Voltage").attrs.get("units"), "V") or "V"
        where = main.name
    if voltage.shape != (loops.shape[2],):
        raise DatasetError(
            f"{path}: the Voltage array has shape {voltage.shape} but loops have "
            f"{loops.shape[2]} points: the file is inconsistent."
        )
    bad = ~np.isfinite(loops)
    if bad.any():
        raise DatasetError(
            f"{path}: {int(bad.any(axis=2).sum())} pixel loop(s) hold {int(bad.sum())} "
            "non-finite value(s): fill them (e.g. with the median loop) and import with "
            "--format arrays."
        )
    h, w, _ = loops.shape
    flat = loops.reshape(h * w, -1)
    structure = {
        key: np.array([scalarize(kind, s, voltage) for s in flat]).reshape(h, w)
        for key, kind in (("remanent", "remanent"), ("loop_mean", "mean"))
    }
    info = ModalityInfo("beps_loop", voltage, "voltage", axis_units, signal_units)
    ds = Dataset(
        name=name or path.stem,
        source=f"{path.name}:{where}",
        structure=structure,
        modalities={"beps_loop": info},
        signals={"beps_loop": loops},
        pixel_size_um=pitches[0] if pitches else 1.0,
        units={"remanent": signal_units, "loop_mean": signal_units},
    )
    check_dataset(ds)
    return ds


def _channel_key(group: str) -> tuple[int, str]:
    tail = group.rsplit("_", 1)[-1]
    return (int(tail), group) if tail.isdigit() else (1 << 30, group)


def read_pfm_h5(path: str | Path, *, name: str | None = None) -> Dataset:
    """Read a pyNSID/sidpy PFM image file: every ``Measurement_000/Channel_*`` image.

    Each channel's 2-D array becomes a structure channel named by its ``quantity``
    attribute (``HeightRetrace``, ``AmplitudeRetrace`` …; the group name when absent),
    float64, rows = the file's first dimension. No modalities: see :func:`promote_channels`.
    The pixel pitch is that of the first position scale with length units (rows).
    """
    path = Path(path)
    structure: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    pitches: list[float] = []
    with _open_h5(path) as f:
        if "Measurement_000" not in f:
            raise DatasetError(
                f"{path} has no Measurement_000 group: it is not a PFM image file in the "
                "pyNSID layout (try --format beps-h5 or arrays)."
            )
        measurement = f["Measurement_000"]
        groups = sorted((g for g in measurement if g.startswith("Channel_")), key=_channel_key)
        for group in groups:
            image = _first_array(measurement[group], 2)
            if image is None:
                continue
            label = _text(image.attrs.get("quantity"), group).strip().replace("/", "_") or group
            key, n = label, 2
            while key in structure:
                key, n = f"{label}_{n}", n + 1
            structure[key] = np.asarray(image[()], dtype=np.float64)
            units[key] = _text(image.attrs.get("units"))
            for dim, fallback in ((0, "x"), (1, "y")):
                if len(image.dims[dim]) or fallback in image.parent:
                    pitch = _pitch_um(_scale(image, dim, fallback))
                    pitches += [pitch] if pitch else []
    if not structure:
        raise DatasetError(
            f"{path} has no 2-D image under Measurement_000/Channel_*: nothing to import."
        )
    ds = Dataset(
        name=name or path.stem,
        source=f"{path.name}:/Measurement_000",
        structure=structure,
        pixel_size_um=pitches[0] if pitches else 1.0,
        units=units,
    )
    check_dataset(ds)
    return ds


def promote_channels(ds: Dataset, channels: Sequence[str]) -> Dataset:
    """Turn structure ``channels`` into one-point modalities (``L = 1``, axis ``point``).

    A costly channel (a PFM amplitude, a phase) then counts as a measurement instead of
    being known up front; the remaining channels stay structure (at least one must).
    """
    if not channels:
        return ds
    unknown = [c for c in channels if c not in ds.structure]
    if unknown:
        raise DatasetError(
            f"signal channel(s) {unknown} are not structure channels of {ds.name!r}: use some "
            f"of {list(ds.structure)}."
        )
    kept = {k: v for k, v in ds.structure.items() if k not in channels}
    if not kept:
        raise DatasetError(
            f"--signal-channels lists every structure channel of {ds.name!r}: leave at least "
            "one as the structure image."
        )
    modalities = dict(ds.modalities)
    signals = dict(ds.signals)
    for channel in channels:
        if channel in modalities:
            raise DatasetError(
                f"channel {channel!r} is already a modality of {ds.name!r}: rename one of them."
            )
        unit = ds.units.get(channel, "")
        modalities[channel] = ModalityInfo(channel, np.zeros(1), POINT_AXIS, "", unit)
        signals[channel] = ds.structure[channel][:, :, None]
    out = Dataset(ds.name, ds.source, kept, modalities, signals, ds.pixel_size_um, ds.units)
    check_dataset(out)
    return out


def detect_format(source: str | Path) -> str:
    """``"beps-h5"``, ``"pfm-h5"`` or ``"arrays"`` from the extension and, for HDF5, content."""
    source = Path(source)
    if source.is_dir() or source.suffix in (".npz", ".npy"):
        return "arrays"
    if source.suffix.lower() == ".csv":
        return "table"
    if source.suffix.lower() not in _H5_SUFFIXES:
        raise DatasetError(
            f"cannot tell the format of {source} from its extension: use .h5/.hdf5, .npz, .npy "
            "or a folder of .npy files, or pass --format."
        )
    with _open_h5(source) as f:
        if "Measurement_000" in f:
            return "pfm-h5"
        if "Channel_000" in f:
            return "beps-h5"
    raise DatasetError(
        f"{source} has neither Measurement_000 (PFM images) nor Channel_000 (BEPS): it is not "
        "in a pyNSID layout coscope reads; export it as .npz (image, spectra, axis)."
    )


def read_source(
    source: str | Path,
    fmt: str = "auto",
    *,
    name: str | None = None,
    features: str | Sequence[str] = (),
    targets: str | Sequence[str] = (),
    **array_options: Any,
) -> Dataset:
    """Read ``source`` with the reader of ``fmt`` (``"auto"``: :func:`detect_format`).

    ``features`` and ``targets`` are the columns of a ``table`` (CSV) source, and only those.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"format {fmt!r} is unknown: use one of {', '.join(FORMATS)}.")
    if not Path(source).exists():
        raise DatasetError(f"no file or folder at {source}: check the SOURCE path.")
    kind = detect_format(source) if fmt == "auto" else fmt
    if (features or targets) and kind != "table":
        raise DatasetError(
            f"--features and --targets apply to --format table only, not to {kind!r}: drop them."
        )
    try:
        if kind == "table":
            return read_table_csv(source, features=features, targets=targets, name=name)
        if kind == "mask":
            return read_mask(source, name=name)
        if kind == "beps-h5":
            return read_beps_h5(source, name=name)
        if kind == "pfm-h5":
            return read_pfm_h5(source, name=name)
        return read_arrays(source, name=name, **array_options)
    except CoscopeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file makes its parser raise anything
        what = " ".join(str(exc).split())[:160] or "no detail"
        raise DatasetError(
            f"{source} could not be read as {kind} ({type(exc).__name__}: {what}): the file is "
            "damaged or not of that format; check it, re-export it, or give --format."
        ) from None


def import_dataset(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "auto",
    name: str | None = None,
    signal_channels: Sequence[str] = (),
    features: str | Sequence[str] = (),
    targets: str | Sequence[str] = (),
    **array_options: Any,
) -> Dataset:
    """Read ``source``, promote ``signal_channels`` to modalities and write it to ``out``.

    A ``table`` source takes its ``features`` and ``targets`` columns (see
    :mod:`coscope.storage.dataset_tables`).

    Nothing is written unless the whole dataset is valid; an existing ``out`` is refused.
    """
    if Path(out).exists():
        raise DatasetError(f"{out} already exists: choose another --out path or delete it first.")
    ds = read_source(source, fmt, name=name, features=features, targets=targets, **array_options)
    ds = promote_channels(ds, signal_channels)
    write_dataset(ds, out)
    return ds


__all__ = [
    "FORMATS",
    "detect_format",
    "import_dataset",
    "promote_channels",
    "read_arrays",
    "read_beps_h5",
    "read_pfm_h5",
    "read_source",
]
