"""Instrument kind ``epics``: a microscope or beamline driven over EPICS Channel Access.

Built from ophyd signals (caproto's pure-Python control layer): one positioner per space
coordinate — a setpoint PV and a readback PV followed by a monitor, done when the readback
is within ``tolerance`` of the target, like ophyd's ``Movable`` — a trigger PV (put 1, done at put
completion) and one readable waveform PV per modality (``Readable``), with its axis PV.
Measuring moves every positioner to the location's coordinates (µm for grids,
:meth:`coscope.spaces.Space.coordinates`), waits ``settle_s``, triggers, and reads the
waveform. Every operation has its own timeout. A spec names it as::

    instruments:
      - name: afm
        kind: epics
        modalities: [beps_loop]
        latency_s: 0            # the real instrument takes its own time
        options:
          prefix: "SIM:"
          positioners:          # in the order of the space's coordinates: row, col (µm)
            - {setpoint: ROW_SP, readback: ROW_RBV, tolerance: 0.001}
            - {setpoint: COL_SP, readback: COL_RBV, tolerance: 0.001}
          trigger: ACQUIRE
          signals: {beps_loop: {waveform: BEPS_LOOP, axis: BEPS_LOOP_AXIS, axis_name: voltage,
                                axis_units: V}}
          settle_s: 0.0
          connect_timeout_s: 5

What goes wrong is classified for the campaign (:mod:`coscope.errors`): a PV that does not
connect or a lost connection is :class:`~coscope.errors.InstrumentDown`, an operation over
its timeout :class:`~coscope.errors.InstrumentTimeout`, a waveform of the wrong length or
with a NaN :class:`~coscope.errors.BadMeasurement`. Channel Access is configured by the
environment (``EPICS_CA_ADDR_LIST``, ``EPICS_CA_AUTO_ADDR_LIST``, ``EPICS_CA_SERVER_PORT``),
which a LocalCluster's Dask workers inherit. A simulator to test against:
:mod:`coscope.instruments.epics_ioc`; the guide: ``docs/connect-your-instrument.md``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coscope.errors import (
    BadMeasurement,
    ConfigError,
    InstrumentDown,
    InstrumentError,
    InstrumentTimeout,
    TransientFault,
)
from coscope.instruments.base import check_modality, validate_request, validate_signal
from coscope.instruments.registry import register_space_instrument
from coscope.spaces import Space
from coscope.types import Location, Measurement, MeasurementRequest, ModalityInfo

CONTROL_LAYER = "caproto"
"""ophyd's control layer unless ``OPHYD_CONTROL_LAYER`` says otherwise (no pyepics here)."""
_STATUS_MARGIN_S = 2.0
"""Extra wait for an ophyd status beyond its own timeout (its thread reports the timeout)."""


@dataclass(frozen=True)
class Positioner:
    """One motor axis: ``setpoint`` and ``readback`` PV names, done within ``tolerance``."""

    setpoint: str
    readback: str
    tolerance: float


@dataclass(frozen=True)
class Waveform:
    """One modality's readable waveform PV, its axis PV, and their names and units."""

    waveform: str
    axis: str
    axis_name: str = "index"
    axis_units: str = ""
    signal_units: str = "a.u."


@dataclass(frozen=True)
class Timeouts:
    """Seconds each operation may take: connecting, a move, an acquisition, a read."""

    connect_s: float = 5.0
    move_s: float = 30.0
    acquire_s: float = 30.0
    read_s: float = 5.0


class EpicsInstrument:
    """Measures a space by driving EPICS PVs through ophyd (see the module docstring).

    Connects at :meth:`connect` or at its first use, never in the constructor.

    Args:
        name: Instrument name.
        space: The campaign's space; a location is moved to its coordinates.
        modalities: Modalities offered (each has a :class:`Waveform`).
        positioners: One per space coordinate, in coordinate order.
        trigger: The acquire PV (put 1, complete when the acquisition is).
        signals: Modality -> its waveform.
        settle_s: Pause after the moves before triggering, seconds.
        timeouts: Per-operation timeouts.
    """

    def __init__(
        self,
        name: str,
        space: Space,
        modalities: Sequence[str],
        positioners: Sequence[Positioner],
        trigger: str,
        signals: Mapping[str, Waveform],
        settle_s: float = 0.0,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.name = name
        self.modalities: tuple[str, ...] = tuple(modalities)
        self.positioners = tuple(positioners)
        self.trigger = trigger
        self.signals = {m: signals[m] for m in self.modalities}
        self.settle_s = settle_s
        self.timeouts = timeouts
        self._layout = space.layout
        self._indices = np.asarray(space.indices)
        self._coordinates = np.asarray(space.coordinates(), dtype=np.float64)
        self._lock = threading.RLock()  # one measurement at a time, also across retries
        self._pvs: _Signals | None = None
        self._infos: dict[str, ModalityInfo] = {}

    def __repr__(self) -> str:
        return f"EpicsInstrument({self.name!r}, trigger={self.trigger!r})"

    def connect(self) -> None:
        """Connect every PV and read the axes (a no-op when connected).

        Raises:
            InstrumentDown: A PV did not connect within ``connect_timeout_s``.
        """
        with self._lock:
            if self._pvs is not None:
                return
            pvs = _Signals.create(self)
            deadline = time.monotonic() + self.timeouts.connect_s
            for pv_name, signal in pvs.every():
                try:
                    signal.wait_for_connection(timeout=max(deadline - time.monotonic(), 0.01))
                except TimeoutError:
                    raise InstrumentDown(
                        f"PV {pv_name!r} of instrument {self.name!r} did not connect within "
                        f"{self.timeouts.connect_s:g} s: start the IOC, check the PV names and "
                        "EPICS_CA_ADDR_LIST / EPICS_CA_SERVER_PORT."
                    ) from None
            self._infos = {m: self._read_axis(m, pvs) for m in self.modalities}
            pvs.watch_readbacks()
            self._pvs = pvs

    def info(self, modality: str) -> ModalityInfo:
        """The modality's description, its axis read from the axis PV (connects if needed)."""
        check_modality(self, modality)
        self.connect()
        return self._infos[modality]

    def measure(self, request: MeasurementRequest) -> Measurement:
        """Move to the request's location, settle, trigger, read the waveform ``(L,)``.

        Raises:
            InstrumentError: An invalid request; InstrumentDown, InstrumentTimeout or
                BadMeasurement as classified in the module docstring.
        """
        t_start = time.time()
        validate_request(self, self._layout, request)
        target = self._position(request.location)
        with self._lock:
            self.connect()
            pvs = self._pvs
            assert pvs is not None  # connect() set it
            self._move(pvs, target)
            if self.settle_s:
                time.sleep(self.settle_s)
            self._acquire(pvs)
            raw = self._read(pvs, request.modality)
        signal = validate_signal(self._infos[request.modality], raw)
        return Measurement.answering(request, self.name, signal, t_start)

    def _position(self, location: Location) -> np.ndarray:
        """The space coordinates of ``location`` (one per positioner); InstrumentError off it."""
        flat = location.row * self._layout[1] + location.col
        at = int(np.searchsorted(self._indices, flat))
        if at >= self._indices.size or self._indices[at] != flat:
            raise InstrumentError(
                f"location ({location.row}, {location.col}) is not a candidate of the "
                f"campaign's space: instrument {self.name!r} measures only its candidates."
            )
        return self._coordinates[at]

    def _move(self, pvs: _Signals, target: np.ndarray) -> None:
        """Put every setpoint, then wait until every readback is within its tolerance."""
        timeout = self.timeouts.move_s
        for motor, x, positioner in zip(pvs.motors, target, self.positioners, strict=True):
            put = functools.partial(motor.put, float(x))
            self._guard(put, positioner.setpoint, "start a move", pvs)
        tolerances = [p.tolerance for p in self.positioners]
        if not pvs.wait_at(target, tolerances, timeout):
            where = ", ".join(p.readback for p in self.positioners)
            limit = f"{timeout:g} s (move_timeout_s)"
            raise self._classify(TimeoutError(), where, "move to its target", limit, pvs)

    def _acquire(self, pvs: _Signals) -> None:
        timeout = self.timeouts.acquire_s
        status = self._guard(
            lambda: pvs.trigger.set(1, timeout=timeout), self.trigger, "trigger", pvs
        )
        self._wait(status, timeout, self.trigger, "finish acquiring", "acquire_timeout_s", pvs)

    def _read(self, pvs: _Signals, modality: str) -> np.ndarray:
        pv = self.signals[modality].waveform
        value = self._guard(
            lambda: pvs.waves[modality].get(timeout=self.timeouts.read_s), pv, "read", pvs
        )
        return np.atleast_1d(np.asarray(value))

    def _read_axis(self, modality: str, pvs: _Signals) -> ModalityInfo:
        spec = self.signals[modality]
        value = self._guard(
            lambda: pvs.axes[modality].get(timeout=self.timeouts.read_s), spec.axis, "read", pvs
        )
        axis = np.atleast_1d(np.asarray(value, dtype=np.float64))
        if axis.ndim != 1 or not axis.size or not np.isfinite(axis).all():
            raise BadMeasurement(
                f"axis PV {spec.axis!r} of instrument {self.name!r} holds {axis.size} values, "
                "some not finite: serve one finite value per waveform point."
            )
        return ModalityInfo(modality, axis, spec.axis_name, spec.axis_units, spec.signal_units)

    def _wait(
        self, status: Any, timeout: float, pv: str, what: str, option: str, pvs: _Signals
    ) -> None:
        try:
            status.wait(timeout + _STATUS_MARGIN_S)
        except Exception as exc:  # noqa: BLE001 - ophyd/caproto errors, classified here
            raise self._classify(exc, pv, what, f"{timeout:g} s ({option})", pvs) from None

    def _guard(self, operation: Any, pv: str, what: str, pvs: _Signals) -> Any:
        try:
            return operation()
        except Exception as exc:  # noqa: BLE001 - ophyd/caproto errors, classified here
            raise self._classify(exc, pv, what, "its timeout", pvs) from None

    def _classify(
        self, exc: BaseException, pv: str, what: str, limit: str, pvs: _Signals
    ) -> InstrumentError:
        """``exc`` from an operation on ``pv`` (one of ``pvs``) as a classified one-sentence
        error: lost connection, timeout, or another fault of the driver."""
        if not pvs.connected():
            return InstrumentDown(
                f"instrument {self.name!r} lost its connection while it tried to {what} "
                f"(PV {pv!r}): restart the IOC or fix the network, then resume the campaign."
            )
        if isinstance(exc, TimeoutError):
            return InstrumentTimeout(
                f"instrument {self.name!r} did not {what} within {limit} (PV {pv!r}): check "
                "the device, or raise the timeout."
            )
        text = " ".join(str(exc).split())[:200] or "no message"
        return TransientFault(
            f"instrument {self.name!r} failed to {what} (PV {pv!r}): {type(exc).__name__}: {text}."
        )


class _Signals:
    """The ophyd signals of one :class:`EpicsInstrument`."""

    def __init__(self, motors: list[Any], trigger: Any, waves: dict, axes: dict) -> None:
        self.motors, self.trigger, self.waves, self.axes = motors, trigger, waves, axes
        self._named: list[tuple[str, Any]] = []
        self._positions: list[float | None] = [None] * len(motors)
        self._moved = threading.Condition()

    def watch_readbacks(self) -> None:
        """Follow every positioner's readback by a Channel Access monitor (event-driven
        waits: ophyd's ``set`` polls with a back-off of 10, 20, 40 … ms)."""
        for i, motor in enumerate(self.motors):
            motor.subscribe(functools.partial(self._on_readback, i), run=True)

    def _on_readback(self, index: int, value: Any = None, **_: Any) -> None:
        with self._moved:
            self._positions[index] = None if value is None else float(value)
            self._moved.notify_all()

    def wait_at(self, target: np.ndarray, tolerances: Sequence[float], timeout: float) -> bool:
        """Whether every readback came within its tolerance of ``target`` within ``timeout`` s."""
        deadline = time.monotonic() + timeout

        def arrived() -> bool:
            pairs = zip(self._positions, target, tolerances, strict=True)
            return all(at is not None and abs(at - x) <= tol for at, x, tol in pairs)

        with self._moved:
            while not arrived():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._moved.wait(remaining)
        return True

    @classmethod
    def create(cls, inst: EpicsInstrument) -> _Signals:
        ophyd = _ophyd()
        motors = [
            ophyd.EpicsSignal(p.readback, write_pv=p.setpoint, name=f"{inst.name}_m{i}")
            for i, p in enumerate(inst.positioners)
        ]
        trigger = ophyd.EpicsSignal(inst.trigger, put_complete=True, name=f"{inst.name}_trigger")
        waves = {
            m: ophyd.EpicsSignalRO(w.waveform, name=f"{inst.name}_{m}")
            for m, w in inst.signals.items()
        }
        axes = {
            m: ophyd.EpicsSignalRO(w.axis, name=f"{inst.name}_{m}_axis")
            for m, w in inst.signals.items()
        }
        out = cls(motors, trigger, waves, axes)
        for motor, p in zip(motors, inst.positioners, strict=True):
            out._named += [(p.readback, motor)]
        out._named += [(inst.trigger, trigger)]
        out._named += [(inst.signals[m].waveform, s) for m, s in waves.items()]
        out._named += [(inst.signals[m].axis, s) for m, s in axes.items()]
        return out

    def every(self) -> list[tuple[str, Any]]:
        """``(PV name, signal)`` of every signal."""
        return list(self._named)

    def connected(self) -> bool:
        """Whether every signal is connected now."""
        return all(signal.connected for _, signal in self._named)


def _ophyd() -> Any:
    """ophyd on the caproto control layer (or ``OPHYD_CONTROL_LAYER``)."""
    # ophyd and caproto load only for this kind: optional for coscope, ~1 s to import
    os.environ.setdefault("OPHYD_CONTROL_LAYER", CONTROL_LAYER)
    import ophyd

    wanted = os.environ["OPHYD_CONTROL_LAYER"].lower()
    if ophyd.cl.name != wanted:
        ophyd.set_cl(wanted)
    quiet = logging.getLogger("ophyd")
    if quiet.level == logging.NOTSET:  # a failed set logs a traceback; our error says it
        quiet.setLevel(logging.CRITICAL)
    return ophyd


def _text(options: Mapping[str, Any], key: str, where: str) -> str:
    value = options.get(key)
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise ConfigError(f"{where}.{key} must be a PV name (text without spaces), got {value!r}.")
    return value


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{where} must be a number > 0, got {value!r}.")
    return float(value)


def _positioners(prefix: str, given: Any, n_coordinates: int) -> list[Positioner]:
    if not isinstance(given, list | tuple) or len(given) != n_coordinates:
        raise ConfigError(
            f"options.positioners must list {n_coordinates} positioners, one per space "
            f"coordinate (row, col in µm), got {given!r}."
        )
    out = []
    for i, entry in enumerate(given):
        where = f"options.positioners[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - {"setpoint", "readback", "tolerance"}:
            raise ConfigError(f"{where} must be {{setpoint, readback, tolerance}}, got {entry!r}.")
        tolerance = _positive(entry.get("tolerance", 0.001), f"{where}.tolerance")
        setpoint, readback = _text(entry, "setpoint", where), _text(entry, "readback", where)
        out.append(Positioner(prefix + setpoint, prefix + readback, tolerance))
    return out


def _waveforms(prefix: str, given: Any, modalities: Sequence[str]) -> dict[str, Waveform]:
    if not isinstance(given, Mapping) or not given:
        raise ConfigError(
            f"options.signals must map each modality to {{waveform, axis}}, got {given!r}."
        )
    missing = [m for m in modalities if m not in given]
    if missing:
        raise ConfigError(f"options.signals has no waveform for modalities {missing}: add them.")
    out = {}
    for modality, entry in given.items():
        where = f"options.signals.{modality}"
        keys = {"waveform", "axis", "axis_name", "axis_units", "signal_units"}
        if not isinstance(entry, Mapping) or set(entry) - keys:
            raise ConfigError(f"{where} must be {{waveform, axis, axis_name, …}}, got {entry!r}.")
        names = {
            k: str(entry[k]) for k in ("axis_name", "axis_units", "signal_units") if k in entry
        }
        wave, axis = _text(entry, "waveform", where), _text(entry, "axis", where)
        out[str(modality)] = Waveform(prefix + wave, prefix + axis, **names)
    return out


@register_space_instrument("epics")
def epics_instrument(
    name: str,
    space: Space,
    modalities: Sequence[str] | None = None,
    *,
    positioners: Sequence[Mapping[str, Any]],
    trigger: str,
    signals: Mapping[str, Mapping[str, Any]],
    prefix: str = "",
    settle_s: float = 0.0,
    connect_timeout_s: float = 5.0,
    move_timeout_s: float = 30.0,
    acquire_timeout_s: float = 30.0,
    read_timeout_s: float = 5.0,
) -> EpicsInstrument:
    """An :class:`EpicsInstrument` from a spec's options (PV names are ``prefix + name``).

    Raises:
        ConfigError: One sentence naming the option that is wrong.
    """
    if not isinstance(prefix, str) or any(c.isspace() for c in prefix):
        raise ConfigError(f"options.prefix must be text without spaces, got {prefix!r}.")
    if isinstance(settle_s, bool) or not isinstance(settle_s, int | float) or settle_s < 0:
        raise ConfigError(f"options.settle_s must be a number >= 0 seconds, got {settle_s!r}.")
    mods = tuple(modalities) if modalities else tuple(signals or ())
    waveforms = _waveforms(prefix, signals, mods)
    timeouts = Timeouts(
        _positive(connect_timeout_s, "options.connect_timeout_s"),
        _positive(move_timeout_s, "options.move_timeout_s"),
        _positive(acquire_timeout_s, "options.acquire_timeout_s"),
        _positive(read_timeout_s, "options.read_timeout_s"),
    )
    n_coordinates = int(np.asarray(space.coordinates()).shape[1])
    return EpicsInstrument(
        name,
        space,
        mods,
        _positioners(prefix, positioners, n_coordinates),
        prefix + _text({"trigger": trigger}, "trigger", "options"),
        waveforms,
        float(settle_s),
        timeouts,
    )


__all__ = ["EpicsInstrument", "Positioner", "Timeouts", "Waveform", "epics_instrument"]
