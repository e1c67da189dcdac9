"""Sample kind ``"dataset"``: a recorded ground-truth dataset as a digital twin's sample.

The sample's truth is the recorded signals, so the ordinary
:class:`~coscope.instruments.simulated.SimulatedInstrument` (wrapped by ``build_instrument``
with noise, latency and cost) *replays* the recording: measuring a pixel returns the signal
recorded there. A spec names it as::

    sample: {kind: dataset, params: {path: runs/datasets/beps_pto.zarr, structure: remanent}}

A relative ``path`` is resolved against the current directory of the process that builds
the sample (``coscope run`` and its Dask workers share it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from coscope.errors import ConfigError, DatasetError
from coscope.instruments.sample import Sample, register_sample


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> Any:
    """The dataset at ``path`` as of ``mtime_ns`` (its root ``zarr.json``), arrays read-only."""
    from coscope.storage.datasets import freeze, load_dataset

    return freeze(load_dataset(path))


def _mtime_ns(path: Path) -> int:
    try:
        return (path / "zarr.json").stat().st_mtime_ns
    except OSError:
        return -1  # load_dataset says what is wrong


@register_sample("dataset")
def dataset_sample(
    *, seed: int = 0, path: str, structure: str | None = None, name: str | None = None
) -> Sample:
    """A :class:`Sample` replaying the dataset at ``path`` (see ``docs/datasets.md``).

    Args:
        seed: Unused: a recording has no randomness (noise comes from the instrument).
        path: Folder of a dataset written by ``coscope dataset import``.
        structure: Structure channel used as the sample's structure image (default: the
            first one).
        name: Sample name (default: the dataset's name).

    Returns:
        ``Sample(structure=H x W, modalities=the dataset's, truth={modality: H x W x L})``;
        for a table dataset (``docs/spaces.md``) also ``features`` = its feature columns,
        ``N x 1`` each, so the campaign's space is the table.
        Loaded once per (path, modification time) per process; arrays are read-only.

    Raises:
        ConfigError: ``path`` is not a readable dataset, or ``structure`` is not one of its
            channels.
    """
    del seed
    resolved = Path(path).expanduser().resolve()
    try:
        ds = _load(str(resolved), _mtime_ns(resolved))
    except DatasetError as exc:
        raise ConfigError(f"path={path!r}: {exc}") from None
    channel = structure if structure is not None else next(iter(ds.structure))
    if channel not in ds.structure:
        raise ConfigError(
            f"structure={structure!r} is not a structure channel of dataset {ds.name!r}: use "
            f"one of {list(ds.structure)}."
        )
    table = ds.space.get("features", []) if ds.space.get("kind") == "table" else []
    return Sample(
        name=name or ds.name,
        structure=ds.structure[channel],
        pixel_size_um=ds.pixel_size_um,
        modalities=dict(ds.modalities),
        truth=dict(ds.signals),
        features={column: ds.structure[column] for column in table},
    )


__all__ = ["dataset_sample"]
