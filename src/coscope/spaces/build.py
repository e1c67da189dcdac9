"""Building a space: from a campaign's sample and mask spec, or from a trace's description.

:func:`space_of` is what the composition root calls (the same space in the campaign, its
Dask workers, replay, retrace, status and studies, since all of them rebuild the sample
from the stored spec). :func:`space_from_description` rebuilds a space from the plain data
stored in the trace (root attribute ``space``), without the sample and without user code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from coscope.registry import Registry
from coscope.spaces.base import Space, SpaceError
from coscope.spaces.box import DEFAULT_CAPACITY, Box
from coscope.spaces.grid import MaskedGrid, PixelGrid, mask_of_runs
from coscope.spaces.masks import interior_mask, pixels_mask, read_mask_file, rect_mask
from coscope.spaces.table import CandidateTable


def mask_from_spec(mask: Mapping[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """The ``H x W`` candidate mask a spec's ``sample.mask`` (one of its forms) names."""
    given = {k: v for k, v in mask.items() if v is not None}
    if "file" in given:
        arr = read_mask_file(given["file"])
        if arr.shape != tuple(shape):
            raise SpaceError(
                f"the mask {given['file']} is {arr.shape[0]} x {arr.shape[1]}, the sample "
                f"{shape[0]} x {shape[1]}: give a mask of the sample's shape."
            )
        return arr
    if "pixels" in given:
        return pixels_mask(shape, given["pixels"])
    if "rect" in given:
        return rect_mask(shape, given["rect"])
    if "interior" in given:
        return interior_mask(shape, given["interior"])
    raise SpaceError("sample.mask names no pixels: give one of file, pixels, rect, interior.")


def space_of(
    shape: tuple[int, int],
    pixel_size_um: float,
    *,
    mask: Mapping[str, Any] | None = None,
    table: Mapping[str, np.ndarray] | None = None,
    box: Mapping[str, Any] | None = None,
) -> Space:
    """The space of a sample: a box, its table, its masked pixels, or every pixel.

    Args:
        shape: The sample's ``(H, W)``.
        pixel_size_um: Its pixel pitch, µm.
        mask: The spec's ``sample.mask`` as a dict (None: no mask).
        table: Feature columns of a table sample, name -> ``N x 1`` (None or empty: a grid).
        box: The spec's ``sample.box`` as a dict (None: a finite space); its layout is the
            sample's ``H x 1`` slots.

    Raises:
        SpaceError: A bad mask, a mask on a table or a box, bad table columns or bounds.
    """
    if box is not None:
        if mask is not None:
            raise SpaceError("sample.mask applies to grid samples only, not to a box: drop it.")
        return box_from_spec(box, capacity=shape[0])
    if table:
        if mask is not None:
            raise SpaceError(
                "sample.mask applies to grid samples only: a table's candidates are its rows; "
                "drop the mask or the rows from the table."
            )
        return CandidateTable.from_columns(table)
    if mask is not None:
        return MaskedGrid(shape, mask_from_spec(mask, shape), pixel_size_um)
    return PixelGrid(shape, pixel_size_um)


def box_from_spec(box: Mapping[str, Any], capacity: int = DEFAULT_CAPACITY) -> Box:
    """The :class:`Box` of a spec's ``sample.box`` (``{"dimensions": [{name, lo, hi, units}]}``)."""
    dims = list(box.get("dimensions") or [])
    return Box(
        [d["name"] for d in dims],
        [d["lo"] for d in dims],
        [d["hi"] for d in dims],
        [d.get("units", "") for d in dims],
        capacity=capacity,
    )


Rebuild = Callable[[dict[str, Any]], Space]
SPACES: Registry[Rebuild] = Registry("space kind")


@SPACES.register("pixel_grid")
def _pixel_grid(desc: dict[str, Any]) -> Space:
    return PixelGrid(tuple(desc["shape"]), desc["pixel_size_um"])


@SPACES.register("masked_grid")
def _masked_grid(desc: dict[str, Any]) -> Space:
    h, w = (int(v) for v in desc["shape"])
    mask = mask_of_runs(desc["runs"], h * w).reshape(h, w)
    return MaskedGrid((h, w), mask, desc["pixel_size_um"])


@SPACES.register("table")
def _table(desc: dict[str, Any]) -> Space:
    return CandidateTable(np.asarray(desc["values"], dtype=np.float64), desc["names"])


@SPACES.register("box")
def _box(desc: dict[str, Any]) -> Space:
    return Box(desc["names"], desc["lo"], desc["hi"], desc["units"], int(desc["capacity"]))


def space_from_description(desc: Mapping[str, Any]) -> Space:
    """The space :meth:`Space.describe` described; SpaceError for a corrupt description."""
    data = dict(desc)
    rebuild = SPACES.get(str(data.get("kind")))
    try:
        return rebuild(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpaceError(
            f"the space description of kind {data.get('kind')!r} is corrupt ({exc!r}); "
            "rebuild the space from the campaign spec."
        ) from None


def space_summary(desc: Mapping[str, Any] | None, shape: tuple[int, int]) -> dict[str, Any]:
    """``{"kind", "candidates", "layout"}`` (a box: also ``dimensions``) of a stored
    description (None: a trace written before spaces, i.e. every pixel of ``shape``)."""
    space = space_from_description(desc) if desc else PixelGrid(shape)
    out = {"kind": space.kind, "candidates": space.size, "layout": list(space.layout)}
    if isinstance(space, Box):  # continuous: its dimensions, not a candidate count
        out["dimensions"] = [
            {"name": n, "lo": float(a), "hi": float(b), "units": u}
            for n, a, b, u in zip(
                space.names, space.lo, space.hi, space.dimension_units, strict=True
            )
        ]
    return out


__all__ = [
    "SPACES",
    "box_from_spec",
    "space_summary",
    "mask_from_spec",
    "space_from_description",
    "space_of",
]
