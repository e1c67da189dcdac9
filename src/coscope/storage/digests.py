"""Digest chains over the committed rows of a trace: what makes silent changes visible.

Every table of the trace (and the signals of each modality) carries a SHA-256 *chain*:
``d_0 = ""`` and ``d_i = sha256(d_{i-1} || bytes(row_i))``, where ``bytes(row)`` is the
canonical encoding of the row's values in column order (int64 / float64 little-endian, strings
as UTF-8 with a length prefix; a measurement row is followed by its signal's float64 bytes).
The chain's head after the committed rows is written into the root ``zarr.json`` together
with the counts — in the same atomic write that commits the row — under ``digests``, and the
static part of the root (campaign, sample shape, modalities) has its own ``header`` digest.

So a reader can tell, from the data alone:

* a flipped byte in any committed row or signal (the chain no longer reaches the head);
* counts edited down or rolled back (the head is reached at a later row, not at ``counts``);
* counts edited up or rows lost (fewer rows than the counts name);
* a changed ``sample_shape``, campaign or modality (the header digest differs).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from coscope.storage.columns import ColumnSpec

EMPTY = ""
"""Head of the chain of an empty table."""

_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")


def value_bytes(kind: str, value: Any) -> bytes:
    """Canonical bytes of one cell: int64/float64 little-endian, or length-prefixed UTF-8."""
    if kind == "str":
        raw = str(value).encode("utf-8")
        return struct.pack("<q", len(raw)) + raw
    dtype = _INT if kind == "int" else _FLOAT
    cell = np.zeros((), dtype=dtype)
    cell[...] = value
    return cell.tobytes()


def row_bytes(columns: Sequence[ColumnSpec], values: Sequence[Any]) -> bytes:
    """Canonical bytes of one row: its cells in column order."""
    return b"".join(value_bytes(c.kind, v) for c, v in zip(columns, values, strict=True))


def signal_bytes(signal: np.ndarray) -> bytes:
    """Canonical bytes of one signal row ``(L,)``: float64 little-endian."""
    return np.ascontiguousarray(signal, dtype=_FLOAT).tobytes()


def extend(head: str, payload: bytes) -> str:
    """The chain's next head after a row of canonical bytes ``payload``."""
    return hashlib.sha256(head.encode("ascii") + payload).hexdigest()


def chain(payloads: Iterable[bytes]) -> list[str]:
    """Every head of the chain: ``heads[i]`` is the head after ``i`` rows (``heads[0] = ""``)."""
    heads = [EMPTY]
    for payload in payloads:
        heads.append(extend(heads[-1], payload))
    return heads


def header_digest(attributes: dict[str, Any]) -> str:
    """Digest of the static root attributes: the campaign, sample shape and modalities."""
    static = {
        key: attributes.get(key) for key in ("coscope", "campaign", "sample_shape", "modalities")
    }
    text = json.dumps(static, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
