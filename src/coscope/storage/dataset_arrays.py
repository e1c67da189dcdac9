"""Reader of the user's own grid given as NumPy arrays (``.npz``, ``.npy`` files or arrays).

See ``docs/datasets.md`` (readers, ``arrays``) and :func:`read_arrays`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from coscope.errors import DatasetError
from coscope.storage.datasets import Dataset, check_dataset
from coscope.types import ModalityInfo

_ARRAY_KEYS = ("image", "spectra", "axis")


def _load_array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, str | Path):
        file = Path(value)
        if not file.is_file():
            raise DatasetError(f"array {key!r}: no file at {file}; give the path of a .npy file.")
        try:
            value = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"array {key!r}: {file} is not a NumPy .npy file ({exc}); save it with np.save."
            ) from None
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DatasetError(f"array {key!r} has dtype {arr.dtype}: give real numbers.")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"array {key!r} has {int(bad.sum())} NaN/inf value(s) (first at index {first}): "
            "fill or crop them before importing."
        )
    return arr


def _arrays_from_source(source: Path) -> dict[str, Any]:
    if source.is_dir():
        found = {k: source / f"{k}.npy" for k in _ARRAY_KEYS if (source / f"{k}.npy").is_file()}
        if "image" not in found:
            raise DatasetError(
                f"{source} has no image.npy: put image.npy (H, W) and optionally spectra.npy "
                "(H, W, L) and axis.npy (L,) in the folder."
            )
        return dict(found)
    if source.suffix == ".npy":
        return {"image": source}
    if not source.is_file():
        raise DatasetError(f"no file at {source}: check the SOURCE path.")
    try:
        with np.load(source, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{source} is not a NumPy .npz archive ({exc}): use np.savez.") from None
    extra = sorted(set(data) - set(_ARRAY_KEYS))
    if extra:
        raise DatasetError(
            f"{source} holds unexpected arrays {extra}: use only the keys image, spectra, axis."
        )
    if "image" not in data:
        raise DatasetError(f"{source} has no 'image' array: add the (H, W) structure image.")
    return data


def read_arrays(
    source: str | Path | None = None,
    *,
    image: Any = None,
    spectra: Any = None,
    axis: Any = None,
    name: str | None = None,
    modality: str = "spectrum",
    axis_name: str = "index",
    axis_units: str = "",
    signal_units: str = "a.u.",
    structure_name: str = "image",
    pixel_size_um: float = 1.0,
) -> Dataset:
    """The user's own grid: an image ``H x W``, optional spectra ``H x W x L`` and axis ``(L,)``.

    Args:
        source: A ``.npz`` with keys ``image``, ``spectra``, ``axis``; a folder holding
            ``image.npy`` (and ``spectra.npy``, ``axis.npy``); or one ``.npy`` image.
            Alternatively pass the arrays (or ``.npy`` paths) as ``image``, ``spectra``,
            ``axis``.
        name: Dataset name (default: the source's stem, or ``"arrays"``).
        modality: Name of the spectra's modality.
        axis_name: Name of the spectral axis (e.g. ``"voltage"``, ``"wavenumber"``).
        axis_units: Units of the axis.
        signal_units: Units of the spectra.
        structure_name: Name of the image's structure channel.
        pixel_size_um: Pixel pitch, µm.

    Raises:
        DatasetError: A missing, mismatched or non-finite array (names it and the fix).
    """
    given = {"image": image, "spectra": spectra, "axis": axis}
    if source is not None:
        given = {
            **_arrays_from_source(Path(source)),
            **{k: v for k, v in given.items() if v is not None},
        }
    if given.get("image") is None:
        raise DatasetError("array 'image' is missing: give the (H, W) structure image.")
    img = _load_array(given["image"], "image")
    if img.ndim != 2 or min(img.shape) < 1:
        raise DatasetError(f"array 'image' has shape {img.shape}: give a non-empty (H, W) image.")
    modalities, signals = {}, {}
    if given.get("spectra") is not None:
        spec = _load_array(given["spectra"], "spectra")
        if spec.ndim != 3 or spec.shape[:2] != img.shape:
            raise DatasetError(
                f"array 'spectra' has shape {spec.shape} but 'image' is {img.shape}: give "
                f"spectra of shape ({img.shape[0]}, {img.shape[1]}, L)."
            )
        if given.get("axis") is None:
            raise DatasetError(
                f"array 'axis' is missing: give the {spec.shape[2]} axis values of the spectra "
                f"(e.g. np.arange({spec.shape[2]}) if they have no physical axis)."
            )
        ax = _load_array(given["axis"], "axis")
        if ax.shape != (spec.shape[2],):
            raise DatasetError(
                f"array 'axis' has shape {ax.shape} but spectra have {spec.shape[2]} points: "
                f"give an axis of shape ({spec.shape[2]},)."
            )
        modalities[modality] = ModalityInfo(modality, ax, axis_name, axis_units, signal_units)
        signals[modality] = spec
    elif given.get("axis") is not None:
        raise DatasetError("array 'axis' was given without 'spectra': add the (H, W, L) spectra.")
    stem = Path(source).stem if source is not None else "arrays"
    ds = Dataset(
        name=name or stem,
        source=str(source) if source is not None else "arrays",
        structure={structure_name: img},
        modalities=modalities,
        signals=signals,
        pixel_size_um=float(pixel_size_um),
    )
    check_dataset(ds)
    return ds


__all__ = ["read_arrays"]
