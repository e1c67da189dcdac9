"""The sidecar of a theory batch: its file format, and reading it back validated.

A batch writes its simulations to ``<run_dir>/theory_batches/batch-NNNN/simulations.npz``
(:func:`write_sidecar`; numeric arrays and JSON strings, no pickles) and posts a request that
points at it with its sha256. :func:`read_batch` turns request + sidecar into the rows to
record, or refuses with one sentence (:class:`TheoryBatchError`). Recording:
:mod:`coscope.campaign.theory_intake`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from coscope.errors import ConfigError
from coscope.types import Location, Measurement, Proposal

THEORY_BATCH = "theory_batch"
"""Inbox request kind of a theory batch."""
BATCH_POLICY = "theory-batch"
"""Decision policy of a simulation recorded from a batch."""
_ARRAYS = ("locations", "loops", "params", "cost", "t_start", "t_end", "score")


Simulation = tuple[Proposal, Measurement, float]
"""One simulation of a batch: its decision, its measurement (cost 0) and the batch's cost."""


class TheoryBatchError(ConfigError):
    """A theory-batch request cannot be recorded (one sentence saying why)."""


def write_sidecar(
    folder: Path, proposals: list[Proposal], results: list[Measurement], **extra: np.ndarray
) -> Path:
    """Write ``simulations.npz`` of a batch (see the module docstring); returns its path.

    Arrays: ``locations`` ``(n, 2)`` int, ``loops`` ``(n, V)``, ``params`` ``(n,)`` JSON
    strings, ``cost``/``t_start``/``t_end``/``score`` ``(n,)`` floats, and ``extra`` ones.
    """
    path = folder / "simulations.npz"
    np.savez(
        path,
        locations=np.array(
            [[m.location.row, m.location.col] for m in results], dtype=np.int64
        ).reshape(-1, 2),
        loops=np.array([np.asarray(m.signal, dtype=np.float64) for m in results]),
        params=np.array([json.dumps(p.params) for p in proposals], dtype=np.str_),
        cost=np.array([m.cost for m in results], dtype=np.float64),
        t_start=np.array([m.t_start for m in results], dtype=np.float64),
        t_end=np.array([m.t_end for m in results], dtype=np.float64),
        score=np.array([p.score for p in proposals], dtype=np.float64),
        **extra,  # type: ignore[arg-type]  # numpy's stub types **kwds as savez's bool
    )
    return path


def sha256_of(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_batch(payload: dict[str, Any], store: Any, spec: Any) -> list[Simulation]:
    """The simulations a request describes (steps 0..n-1, to be renumbered), validated.

    Raises:
        TheoryBatchError: One sentence naming what is wrong and what to do.
    """
    inst = _check_target(payload, store, spec)
    for item in store.interventions():
        if item.kind == THEORY_BATCH and "rejected" not in item.payload:
            if item.payload.get("sha256") == payload["sha256"]:
                first, last = item.payload.get("steps", ["?", "?"])
                raise TheoryBatchError(
                    f"batch {payload.get('batch')} is already in the trace (steps {first}-{last})."
                )
    return rows_of(load_arrays(payload), payload, store, inst)


def load_arrays(payload: dict[str, Any]) -> dict[str, np.ndarray]:
    """The sidecar's arrays, if it exists and is the file that was posted."""
    path = Path(str(payload.get("file", "")))
    if not path.is_file():
        raise TheoryBatchError(f"the batch's sidecar file '{path}' does not exist; post again.")
    if sha256_of(path) != payload.get("sha256"):
        raise TheoryBatchError(
            f"the sidecar '{path}' changed after the batch was posted (sha256 differs); "
            "run the batch again."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in _ARRAYS}
    except (OSError, ValueError, KeyError) as exc:
        raise TheoryBatchError(f"the sidecar '{path}' is not a batch file ({exc}).") from None


def _check_target(payload: dict[str, Any], store: Any, spec: Any) -> str:
    if spec.policy.name != "conavigate":
        raise TheoryBatchError(
            f"the campaign's policy {spec.policy.name!r} does not co-navigate; theory batches "
            "go only to campaigns with policy 'conavigate'."
        )
    name, modality = payload.get("instrument"), payload.get("modality")
    inst = next((i for i in spec.instruments if i.name == name), None)
    if inst is None or not inst.kind.startswith("theory_") or modality not in inst.modalities:
        raise TheoryBatchError(
            f"instrument {name!r} with modality {modality!r} is not a theory simulator of this "
            "campaign; post batches of its theory instrument."
        )
    if modality not in store.modalities:
        raise TheoryBatchError(f"modality {modality!r} is not in the trace; post to its campaign.")
    return str(name)


def rows_of(
    arrays: dict[str, np.ndarray], payload: dict[str, Any], store: Any, inst: str
) -> list[Simulation]:
    modality = str(payload["modality"])
    n, length = len(arrays["params"]), store.modalities[modality].length
    if payload.get("n") != n or any(len(arrays[k]) != n for k in _ARRAYS):
        raise TheoryBatchError(
            f"the sidecar holds inconsistent row counts (request says n={payload.get('n')}); "
            "run the batch again."
        )
    if n == 0:
        raise TheoryBatchError("the batch holds no simulations; nothing to record.")
    if arrays["loops"].shape != (n, length) or not np.all(np.isfinite(arrays["loops"])):
        raise TheoryBatchError(
            f"the batch's loops must be {n} finite signals of length {length} ({modality}); "
            f"got shape {arrays['loops'].shape}."
        )
    h, w = store.sample_shape
    locs = arrays["locations"]
    if locs.shape != (n, 2) or locs.min() < 0 or np.any(locs >= [h, w]):
        raise TheoryBatchError(f"the batch's locations must be (row, col) on the {h} x {w} grid.")
    cost = arrays["cost"]
    if not np.all(np.isfinite(cost)) or np.any(cost < 0):
        raise TheoryBatchError("the batch's costs must be finite and >= 0.")
    out = []
    for i in range(n):
        params = _params(str(arrays["params"][i]), i)
        params["batch_time"] = [float(arrays["t_start"][i]), float(arrays["t_end"][i])]
        loc = Location(int(locs[i, 0]), int(locs[i, 1]))
        proposal = Proposal(
            i, inst, modality, loc, BATCH_POLICY, score=float(arrays["score"][i]), params=params
        )
        # untimed (0, 0): it did not keep the campaign's simulator busy (utilisation skips it)
        measured = Measurement(i, inst, modality, loc, arrays["loops"][i], 0.0, 0.0, 0.0)
        out.append((proposal, measured, float(cost[i])))
    return out


def _params(text: str, i: int) -> dict[str, Any]:
    try:
        params = json.loads(text)
        theta = params["theta"]
        ok = isinstance(theta, dict) and all(np.isfinite(float(v)) for v in theta.values())
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise TheoryBatchError(
            f"simulation {i} of the batch has no finite theta mapping in its params; "
            "run the batch again."
        )
    return params
