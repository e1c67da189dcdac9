"""Readers of a table of candidates (CSV) and of a candidate mask (``.npy``/``.png``).

A *table dataset* (``coscope dataset import FILE.csv --format table --features a,b --targets
y``) holds ``N`` candidates on an ``N x 1`` grid: one ``N x 1`` structure channel per
feature column, and the modality ``targets`` whose signal at candidate ``i`` is the row's
target columns (axis ``target`` = ``0..T-1``; pick one with the ``value_at`` scalarizer).
Its root attribute ``space`` is ``{"kind": "table", "features": [...], "targets": [...]}``.

A *mask dataset* (``--format mask``) holds one ``H x W`` structure channel ``mask`` (1 =
candidate) and ``space = {"kind": "mask"}``; a spec names it as ``sample.mask.file``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coscope.errors import DatasetError
from coscope.storage.datasets import Dataset
from coscope.types import ModalityInfo

MASK_CHANNEL = "mask"
"""Structure channel (and space kind) of a mask dataset."""
TABLE_MODALITY = "targets"
"""Modality of a table dataset: the target columns of a candidate, in the given order."""


def _columns(value: str | Sequence[str], what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(c).strip() for c in items if str(c).strip()]
    if not names:
        raise DatasetError(f"--{what} names no column: give a comma-separated list, e.g. a,b,c.")
    return names


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the CSV {path} ({exc}): give a UTF-8 text CSV.") from None
    if len(rows) < 2:
        raise DatasetError(
            f"the CSV {path} has {max(len(rows) - 1, 0)} data rows: give a header row and at "
            "least one candidate row."
        )
    header = [h.strip() for h in rows[0]]
    for k, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"line {k} of {path} has {len(row)} fields, the header {len(header)}: every "
                "row needs one value per column."
            )
    return header, rows[1:]


def read_table_csv(
    path: str | Path,
    *,
    features: str | Sequence[str],
    targets: str | Sequence[str],
    name: str | None = None,
) -> Dataset:
    """The table dataset of the CSV at ``path`` (header row, one candidate per row).

    Args:
        path: CSV file.
        features: Feature columns (comma-separated or a list): what the models learn on.
        targets: Measured target columns: what the twin instrument returns.
        name: Dataset name (default: the file's stem).

    Raises:
        DatasetError: Unreadable CSV, an unknown or repeated column, a non-numeric or
            non-finite value (one sentence naming column and line).
    """
    path = Path(path)
    feats, targs = _columns(features, "features"), _columns(targets, "targets")
    header, rows = _rows(path)
    wanted = feats + targs
    if len(set(wanted)) != len(wanted):
        raise DatasetError(f"columns {wanted} repeat a name: name each column once.")
    unknown = [c for c in wanted if c not in header]
    if unknown:
        raise DatasetError(f"column(s) {unknown} are not in {path.name}: its columns are {header}.")
    values = np.empty((len(rows), len(wanted)), dtype=np.float64)
    for j, column in enumerate(wanted):
        at = header.index(column)
        for i, row in enumerate(rows):
            try:
                values[i, j] = float(row[at])
            except ValueError:
                values[i, j] = np.nan
            if not np.isfinite(values[i, j]):
                raise DatasetError(
                    f"column {column!r} at line {i + 2} of {path.name} is {row[at]!r}: every "
                    "feature and target must be a finite number; fill or drop that row."
                )
    n, nf = len(rows), len(feats)
    axis = np.arange(len(targs), dtype=np.float64)
    info = ModalityInfo(TABLE_MODALITY, axis, "target", "", "")
    return Dataset(
        name=name or path.stem,
        source=str(path),
        structure={c: values[:, j].reshape(n, 1) for j, c in enumerate(feats)},
        modalities={TABLE_MODALITY: info},
        signals={TABLE_MODALITY: values[:, nf:].reshape(n, 1, len(targs))},
        space={"kind": "table", "features": feats, "targets": targs},
    )


def read_mask_image(path: str | Path) -> np.ndarray:
    """The ``.npy``/``.png`` mask image at ``path`` as ``H x W`` bool (nonzero: candidate).

    Raises:
        DatasetError: Missing or unreadable file, other extension, not 2-D numeric, NaN.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".png"):
        raise DatasetError(f"mask file {path} is not .npy or .png: save the mask as one of them.")
    if not path.is_file():
        raise DatasetError(f"no mask file at {path}: check the path.")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            import matplotlib.image as mpimg  # PNG masks only

            arr = np.asarray(mpimg.imread(path))
            arr = arr[..., :3].max(axis=-1) if arr.ndim == 3 else arr
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read the mask {path} ({exc}): give a valid file.") from None
    arr = np.asarray(arr)
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DatasetError(
            f"the mask {path} has shape {arr.shape} and dtype {arr.dtype}: give a 2-D numeric "
            "or bool image (nonzero = candidate)."
        )
    if not np.isfinite(arr.astype(np.float64)).all():
        raise DatasetError(f"the mask {path} holds NaN or inf: use 0 and 1 only.")
    return arr != 0


def read_mask(path: str | Path, *, name: str | None = None) -> Dataset:
    """The mask dataset of a ``.npy``/``.png`` mask image (nonzero = candidate).

    Raises:
        DatasetError: As :func:`read_mask_image`, or no candidate pixel.
    """
    path = Path(path)
    mask = read_mask_image(path)
    if not mask.any():
        raise DatasetError(f"the mask {path} selects no pixel: mark the candidates nonzero.")
    return Dataset(
        name=name or path.stem,
        source=str(path),
        structure={MASK_CHANNEL: mask.astype(np.float64)},
        space={"kind": MASK_CHANNEL},
    )


__all__ = ["MASK_CHANNEL", "TABLE_MODALITY", "read_mask", "read_mask_image", "read_table_csv"]
