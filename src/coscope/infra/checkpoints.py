"""Model checkpoints in a safe format: one ``.npz`` of arrays plus JSON, never a pickle.

A fitted surrogate's state is a frozen dataclass of numpy arrays, mappings of arrays and
scalars (:class:`~coscope.models.gp.GPState` and friends). :func:`write_checkpoint` stores
every array under its dotted field path (``hyperparameters.covar_module.raw_lengthscale``)
and the scalars in the JSON entry ``__meta__`` (the state's class name included); reading
one back (:func:`read_checkpoint`) uses ``np.load(allow_pickle=False)``, so opening a
checkpoint from anywhere can never execute code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

META = "__meta__"


def _flatten(value: Any, prefix: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _flatten(getattr(value, f.name), f"{prefix}{f.name}", arrays, meta)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), arrays, meta)
    elif isinstance(value, bool | int | float | str) or value is None:
        meta[prefix] = value
    else:
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"checkpoint field {prefix!r} is not numeric data")
        arrays[prefix] = array


def write_checkpoint(state: Any, path: str | Path) -> Path:
    """Write ``state`` (a dataclass of arrays and scalars) as an ``.npz`` at ``path``."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"class": type(state).__name__}
    for f in dataclasses.fields(state):
        _flatten(getattr(state, f.name), f.name, arrays, meta)
    path = Path(path)
    with path.open("wb") as file:
        entries: dict[str, Any] = {**arrays, META: np.array(json.dumps(meta, default=float))}
        np.savez(file, **entries)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(scalars, arrays)`` of a checkpoint written by :func:`write_checkpoint`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k]) for k in data.files if k != META}
        meta = json.loads(str(data[META]))
    return meta, arrays
