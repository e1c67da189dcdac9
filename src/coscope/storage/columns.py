"""Append-only columns: one Zarr v3 array each, appended one row at a time.

A :class:`Column` is the writer's handle on one array whose first axis is the row axis.
Arrays are *created* with zarr (so their metadata is whatever zarr writes), stored
uncompressed (``bytes`` codec, little endian) or as ``vlen-utf8`` strings. Appends bypass
zarr's asynchronous read-modify-write path, which costs ~1 ms per array on this machine, and
avoid replacing files where they can (on ext4 a rename over an existing file costs ~0.5 ms):

    * the shape grows a whole chunk at a time (one ``zarr.json`` rewrite per chunk);
    * a numeric row is written in place into its chunk file (``pwrite`` at a fixed offset),
      which leaves every other byte of the chunk, hence every committed row, untouched;
    * a string chunk is re-encoded and replaced atomically (temp file + rename, as zarr's
      ``LocalStore`` does), so a concurrent reader sees the old or the new chunk, and both
      agree on every row that was already there.

The bytes on disk are exactly what zarr writes for the same data (checked in
``tests/storage``), and all reading goes through zarr itself.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from numcodecs.vlen import VLenUTF8
from zarr.storage import LocalStore

from coscope.errors import StoreError

Kind = Literal["int", "float", "str"]

_VLEN = VLenUTF8()
_NUMERIC = {"int": np.dtype("<i8"), "float": np.dtype("<f8")}
_DATA_TYPES = {"int": "int64", "float": "float64", "str": "string"}
_FILL: dict[str, Any] = {"int": -1, "float": float("nan"), "str": ""}


@dataclass(frozen=True)
class ColumnSpec:
    """Schema of one column.

    Attributes:
        name: Array name inside its group.
        kind: ``"int"`` (int64), ``"float"`` (float64) or ``"str"`` (variable-length UTF-8).
        doc: One-line description, stored as the array's ``description`` attribute.
        units: Units, stored as the ``units`` attribute (empty when dimensionless).
    """

    name: str
    kind: Kind
    doc: str
    units: str = ""


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder + rename).

    Survives the writing process being killed at any instant; no ``fsync``, so a power
    loss may still lose the last writes (the same guarantee as zarr's ``LocalStore``).
    """
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path, root: Path) -> dict[str, Any]:
    """Parse one metadata document, raising :class:`StoreError` if it is unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        rel = path.relative_to(root)
        raise StoreError(
            f"the experimental trace at {root} is corrupt: {rel} cannot be read ({exc}); "
            "restore it from a backup or start a new campaign"
        ) from exc
    if not isinstance(doc, dict):
        raise StoreError(f"the experimental trace at {root} is corrupt: {path} is not an object")
    return doc


def create_column(
    group: zarr.Group,
    spec: ColumnSpec,
    dim: str,
    *,
    chunk_rows: int,
    row_shape: tuple[int, ...] = (),
    extra_dims: tuple[str, ...] = (),
    attrs: dict[str, Any] | None = None,
) -> None:
    """Create an empty column ``(0, *row_shape)`` in ``group`` with zarr.

    Args:
        group: Parent group (open for writing).
        spec: Column schema.
        dim: Name of the row dimension (e.g. ``"measurement"``).
        chunk_rows: Rows per chunk.
        row_shape: Shape of one row (``()`` for scalars, ``(L,)`` for a signal).
        extra_dims: Dimension names of ``row_shape``.
        attrs: Extra attributes.
    """
    attributes: dict[str, Any] = {"description": spec.doc}
    if spec.units:
        attributes["units"] = spec.units
    attributes.update(attrs or {})
    group.create_array(
        spec.name,
        shape=(0, *row_shape),
        chunks=(chunk_rows, *row_shape),
        dtype=str if spec.kind == "str" else _NUMERIC[spec.kind],
        fill_value=_FILL[spec.kind],
        compressors=None,
        dimension_names=(dim, *extra_dims),
        attributes=attributes,
    )


class Column:
    """Writer handle on one append-only array of the trace.

    The array's shape on disk (its *capacity*) grows a whole chunk at a time, so most
    appends write no metadata. Rows of numeric columns are written in place with one
    ``pwrite`` into their (uncompressed) chunk; string chunks are rewritten atomically.
    Rows at or beyond the committed count are never read by :class:`TraceStore`;
    :meth:`finish` shrinks the shape back to exactly :attr:`length` rows.

    Args:
        root: Folder of the whole store.
        path: Path of the array inside the store, e.g. ``"decisions/step"``.
        kind: Expected kind; the array's metadata is checked against it.
    """

    def __init__(self, root: Path, path: str, kind: Kind) -> None:
        self.root = root
        self.path = path
        self.kind: Kind = kind
        self._dir = root / path
        self._meta_path = self._dir / "zarr.json"
        self._load_meta()
        self.length = self.capacity
        self._tail: np.ndarray | None = None
        self._tail_index = -1
        self._fd: int | None = None
        self._fd_index = -1

    def _load_meta(self) -> None:
        meta = read_json(self._meta_path, self.root)
        try:
            codecs = [c["name"] for c in meta["codecs"]]
            grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
            self.chunk_shape = tuple(int(s) for s in grid)
            shape = [int(s) for s in meta["shape"]]
            ok = (
                meta["node_type"] == "array"
                and meta["data_type"] == _DATA_TYPES[self.kind]
                and codecs == (["vlen-utf8"] if self.kind == "str" else ["bytes"])
                and meta["chunk_key_encoding"]["configuration"].get("separator", "/") == "/"
                and len(shape) == len(self.chunk_shape)
                and list(self.chunk_shape[1:]) == shape[1:]
            )
        except (KeyError, TypeError, ValueError, IndexError):
            ok = False
        if not ok:
            raise StoreError(
                f"the experimental trace at {self.root} is corrupt: {self.path}/zarr.json does "
                "not describe the array this version of coscope wrote; restore it from a backup"
            )
        self._meta = meta
        self.capacity = shape[0]

    def _set_shape(self, rows: int) -> None:
        self._meta["shape"][0] = rows
        atomic_write(self._meta_path, json.dumps(self._meta, indent=2))
        self.capacity = rows

    # -- chunks -----------------------------------------------------------------------

    def _chunk_path(self, index: int) -> Path:
        return self._dir.joinpath("c", str(index), *(["0"] * (len(self.chunk_shape) - 1)))

    def _blank(self) -> np.ndarray:
        if self.kind == "str":
            return np.full(self.chunk_shape, "", dtype=object)
        return np.full(self.chunk_shape, _FILL[self.kind], dtype=_NUMERIC[self.kind])

    def _read_chunk(self, index: int) -> np.ndarray:
        path = self._chunk_path(index)
        if not path.exists():
            return self._blank()
        raw = path.read_bytes()
        try:
            if self.kind == "str":
                return np.asarray(_VLEN.decode(raw), dtype=object).reshape(self.chunk_shape)
            return np.frombuffer(raw, dtype=_NUMERIC[self.kind]).reshape(self.chunk_shape).copy()
        except ValueError as exc:
            raise StoreError(
                f"the experimental trace at {self.root} is corrupt: chunk "
                f"{path.relative_to(self.root)} cannot be decoded ({exc})"
            ) from exc

    def _write_chunk(self, index: int, chunk: np.ndarray) -> None:
        path = self._chunk_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = bytes(_VLEN.encode(chunk)) if self.kind == "str" else chunk.tobytes(order="C")
        atomic_write(path, data)

    def _row_bytes(self, value: Any) -> bytes:
        row = np.full(self.chunk_shape[1:], _FILL[self.kind], dtype=_NUMERIC[self.kind])
        row[...] = value
        return row.tobytes(order="C")

    def _pwrite(self, index: int, offset_row: int, data: bytes) -> None:
        if self._fd_index != index or self._fd is None:
            self.close()
            if not self._chunk_path(index).exists():
                self._write_chunk(index, self._blank())
            self._fd = os.open(self._chunk_path(index), os.O_WRONLY)
            self._fd_index = index
        os.pwrite(self._fd, data, offset_row * self._row_nbytes)

    @property
    def _row_nbytes(self) -> int:
        return int(np.prod(self.chunk_shape[1:], dtype=np.int64)) * 8

    # -- writing ----------------------------------------------------------------------

    def append(self, value: Any) -> None:
        """Write row ``length`` (a scalar, or an array of the row shape), growing if needed."""
        n = self.length
        rows = self.chunk_shape[0]
        index, within = divmod(n, rows)
        if n >= self.capacity:
            if not self._chunk_path(index).exists():
                self._write_chunk(index, self._blank())
            self._set_shape((index + 1) * rows)
        if self.kind == "str":
            if self._tail_index != index or self._tail is None:
                self._tail = self._read_chunk(index)
                self._tail_index = index
            self._tail[within] = value
            self._write_chunk(index, self._tail)
        else:
            data = self._row_bytes(value)
            self._pwrite(index, within, data)
        self.length = n + 1

    def reset(self, length: int) -> None:
        """Make ``length`` the row count: shape cut to it, later rows of its chunk blanked.

        Used when opening for appending (undoes a torn append) and after a failed append.
        """
        if self.capacity < length:
            raise StoreError(
                f"the experimental trace at {self.root} is corrupt: {self.path} has "
                f"{self.capacity} rows but {length} are committed"
            )
        self.close()
        self._tail, self._tail_index = None, -1
        if self.capacity > length:
            store = LocalStore(self.root)
            array = zarr.open_array(store, path=self.path, mode="r+", zarr_format=3)
            array.resize((length, *self.chunk_shape[1:]))  # deletes chunks past the end
            self._load_meta()
        index, within = divmod(length, self.chunk_shape[0])
        if within and self._chunk_path(index).exists():
            chunk = self._read_chunk(index)
            chunk[within:] = self._blank()[within:]
            self._write_chunk(index, chunk)
        self.length = length

    def finish(self) -> None:
        """Shrink the shape to exactly :attr:`length` rows (so plain readers see no padding)."""
        self.close()
        if self.capacity != self.length:
            self._set_shape(self.length)

    def close(self) -> None:
        """Close the cached file descriptor of the current chunk."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._fd_index = None, -1
