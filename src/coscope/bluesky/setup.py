"""The devices a Bluesky campaign drives, checked against the campaign before anything moves.

:func:`check_setup` turns what a user passes to :func:`coscope.bluesky.coscope_plan` —
positioners, per modality a reader, the stage's origin and scale — into a :class:`Setup`, or
raises one :class:`~coscope.errors.ConfigError` sentence naming the device and the fix:
a positioner count other than the space's coordinates, a device that cannot move or be read,
a set-point outside a positioner's limits, a modality the campaign may propose with no
reader, a data key the reader does not describe, a described shape other than ``(L,)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from bluesky.protocols import Checkable, Movable, Readable, Triggerable
from bluesky.run_engine import call_in_bluesky_event_loop

from coscope.api import Campaign
from coscope.bluesky.stage import StageMap
from coscope.errors import ConfigError


class Reader(NamedTuple):
    """A modality's detector: an ophyd ``Readable`` and the data key of its ``(L,)`` signal."""

    device: Readable
    key: str


ReaderLike = Reader | tuple[Readable, str] | Readable
"""A :class:`Reader`, a ``(device, key)`` pair, or a device whose ``describe()`` has exactly
one key of the modality's shape ``(L,)``."""


@dataclass(frozen=True)
class Setup:
    """What the plan drives: checked positioners, readers and streams.

    Attributes:
        positioners: One ``Movable`` per coordinate of the space, in coordinate order;
            ``None`` for a coordinate that is the same for every candidate (nothing moves).
        stage: Locations to set-points (:class:`~coscope.bluesky.stage.StageMap`).
        readers: Per modality the campaign may propose, its :class:`Reader`.
        streams: Per modality, the event stream its measurements go to (``"primary"`` when
            the campaign proposes one modality, else the modality's name).
    """

    positioners: tuple[Any | None, ...]
    stage: StageMap
    readers: dict[str, Reader]
    streams: dict[str, str]

    @property
    def driven(self) -> list[tuple[int, Any]]:
        """``(coordinate, positioner)`` of every coordinate a positioner drives."""
        return [(axis, p) for axis, p in enumerate(self.positioners) if p is not None]


def _name(device: object) -> str:
    return str(device.name) if isinstance(device, Readable) else type(device).__name__


def check_positioners(
    positioners: Sequence[Any | None], stage: StageMap, units: str
) -> tuple[Any | None, ...]:
    """``positioners`` as a tuple, or a ConfigError: count, abilities, limits."""
    given = tuple(positioners)
    if len(given) != stage.dims:
        raise ConfigError(
            f"the campaign's space has {stage.dims} coordinates ({units}) but {len(given)} "
            f"positioner(s) were given: give one Movable per coordinate, in coordinate order."
        )
    low, high = stage.bounds()
    for axis, device in enumerate(given):
        if device is None:
            if low[axis] != high[axis]:
                raise ConfigError(
                    f"coordinate {axis} of the space varies ({low[axis]:g} to {high[axis]:g} "
                    "in positioner units): give it a positioner, not None."
                )
            continue
        if not isinstance(device, Movable) or not isinstance(device, Readable):
            raise ConfigError(
                f"positioner {axis} ({_name(device)}) is not a readable ophyd Movable: give a "
                "motor (set/read/describe), e.g. an EpicsMotor or ophyd.sim.SynAxis."
            )
        if isinstance(device, Checkable):
            for value in (float(low[axis]), float(high[axis])):
                try:
                    device.check_value(value)
                except Exception as exc:
                    raise ConfigError(
                        f"positioner '{device.name}' refuses set-point {value:g}, which the "
                        f"campaign's space needs ({' '.join(str(exc).split())[:200]}): widen "
                        "its limits or change the stage origin/scale."
                    ) from None
    names = [d.name for d in given if d is not None]
    if len(set(names)) != len(names):
        raise ConfigError(f"positioners {names} repeat a name: give each axis its own motor.")
    return given


def _as_reader(modality: str, given: ReaderLike, length: int) -> Reader:
    if isinstance(given, tuple) and len(given) == 2 and isinstance(given[1], str):
        device, key = given
    else:
        device, key = given, None
    if not isinstance(device, Readable):
        raise ConfigError(
            f"the reader for '{modality}' ({_name(device)}) is not an ophyd Readable: give a "
            "detector with read() and describe(), and its data key."
        )
    described = described_keys(device)
    shaped = [k for k, v in described.items() if list(v.get("shape", [])) == [length]]
    if key is None:
        if len(shaped) != 1:
            raise ConfigError(
                f"the reader for '{modality}' ({device.name}) describes {len(shaped)} keys of "
                f"shape [{length}] ({', '.join(described) or 'none'}): give (device, key)."
            )
        key = shaped[0]
    if key not in described:
        raise ConfigError(
            f"the reader for '{modality}' ({device.name}) has no data key '{key}': use one of "
            f"{', '.join(described) or 'none'}."
        )
    shape = list(described[key].get("shape", []))
    if shape != [length]:
        raise ConfigError(
            f"data key '{key}' of '{device.name}' describes shape {shape}, but '{modality}' "
            f"signals have {length} values: read a waveform of exactly {length} points."
        )
    return Reader(device, key)


def described_keys(device: Readable) -> dict[str, Any]:
    """``device.describe()``; an ophyd-async device's is awaited in the RunEngine's loop."""
    described = device.describe()
    if inspect.isawaitable(described):
        described = call_in_bluesky_event_loop(described, timeout=30.0)
    return dict(described)


def check_readers(campaign: Campaign, readers: Mapping[str, ReaderLike]) -> dict[str, Reader]:
    """Per modality the campaign may propose, its checked :class:`Reader`, or a ConfigError."""
    wanted = sorted({m for modalities in campaign.offered.values() for m in modalities})
    missing = [m for m in wanted if m not in readers]
    if missing:
        raise ConfigError(
            f"no reader for modality {', '.join(repr(m) for m in missing)}, which the campaign "
            f"may propose: give readers={{modality: (device, key)}} for {', '.join(wanted)}."
        )
    extra = [m for m in readers if m not in wanted]
    if extra:
        raise ConfigError(
            f"readers name modality {', '.join(repr(m) for m in extra)}, which the campaign "
            f"never proposes: give readers for {', '.join(wanted)} only."
        )
    return {m: _as_reader(m, readers[m], campaign.sample.info(m).length) for m in wanted}


def check_setup(
    campaign: Campaign,
    positioners: Sequence[Any | None],
    readers: Mapping[str, ReaderLike],
    origin: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
) -> Setup:
    """Everything the plan drives, checked against ``campaign`` (see the module docstring).

    Raises:
        ConfigError: One sentence naming what does not fit and how to fix it.
    """
    space = campaign.space
    stage = StageMap(space, origin, scale)
    moved = check_positioners(positioners, stage, space.units)
    checked = check_readers(campaign, readers)
    streams = {m: "primary" if len(checked) == 1 else m for m in checked}
    return Setup(moved, stage, checked, streams)


def triggers(device: Readable) -> bool:
    """Whether the plan triggers ``device`` before reading it (it declares ``trigger``)."""
    return isinstance(device, Triggerable)
