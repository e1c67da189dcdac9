"""A simulated EPICS instrument: a caproto Channel Access IOC replaying a coscope sample.

It serves what the ``epics`` instrument kind (:mod:`coscope.instruments.epics`) drives, so
a campaign can run against real Channel Access on loopback (tests, benchmarks, a facility's
dry run). Behind the PVs is a coscope sample — a dataset twin (``kind: dataset``) or a
simulated one — and measuring replays its noise-free truth at the stage position::

    python -m coscope.instruments.epics_ioc --prefix SIM: \\
        --sample '{"kind": "dataset", "params": {"path": "runs/datasets/beps_pto.zarr"}}'

PVs (``P`` the prefix; positions in µm, the space coordinates ``(row, col) * pixel_size``):

==================  =========================================================================
``P:ROW_SP``        row-axis motor setpoint (µm); a put starts a move at ``--speed`` µm/s
``P:ROW_RBV``       its readback, updated while moving (every ``--tick`` s)
``P:COL_SP``        column-axis motor setpoint (µm)
``P:COL_RBV``       its readback
``P:ACQUIRE``       put 1: acquire for ``--acquire-s`` s, fill the waveforms, back to 0; the
                    put completes when the acquisition has (put-completion)
``P:<MOD>``         waveform of modality ``mod`` (upper-case), ``L`` float64, at the pixel
                    nearest to the readbacks
``P:<MOD>_AXIS``    its axis (``L`` float64)
==================  =========================================================================

Faults, for tests (``--fault`` after ``--fault-after`` good acquisitions): ``nan`` (one value
NaN), ``short`` (one value short), ``hang`` (the acquisition never completes).

Channel Access isolation: the server listens on ``--host`` (127.0.0.1) and the port in
``EPICS_CA_SERVER_PORT``; clients set ``EPICS_CA_ADDR_LIST=127.0.0.1``,
``EPICS_CA_AUTO_ADDR_LIST=NO`` and the same port (``docs/connect-your-instrument.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from caproto import ChannelType
from caproto.asyncio.server import run
from caproto.server import PVGroup, pvproperty

from coscope.instruments.sample import Sample, build_sample

FAULTS = ("none", "nan", "short", "hang")
"""Fault modes of the simulator (``--fault``)."""


def modality_pv(modality: str) -> str:
    """The waveform PV suffix of ``modality`` (``beps_loop`` -> ``BEPS_LOOP``)."""
    return modality.upper()


class TwinState:
    """The stage and detector behind the PVs: positions, acquisitions, faults.

    Args:
        sample: The sample replayed (its truth per modality, ``H x W x L``).
        fault: One of :data:`FAULTS`.
        fault_after: Good acquisitions before the fault starts.
    """

    def __init__(self, sample: Sample, fault: str = "none", fault_after: int = 0) -> None:
        self.sample = sample
        self.fault = fault
        self.fault_after = fault_after
        self.acquisitions = 0

    def pixel(self, row_um: float, col_um: float) -> tuple[int, int]:
        """The pixel nearest to the stage position, clipped to the grid."""
        h, w = self.sample.shape
        pitch = self.sample.pixel_size_um
        row = int(np.clip(round(row_um / pitch), 0, h - 1))
        col = int(np.clip(round(col_um / pitch), 0, w - 1))
        return row, col

    def signals(self, row_um: float, col_um: float) -> dict[str, np.ndarray] | None:
        """The waveforms of one acquisition at the position; None: the acquisition hangs."""
        row, col = self.pixel(row_um, col_um)
        self.acquisitions += 1
        faulty = self.fault != "none" and self.acquisitions > self.fault_after
        if faulty and self.fault == "hang":
            return None
        out = {}
        for modality, truth in self.sample.truth.items():
            signal = np.array(truth[row, col], dtype=np.float64)
            if faulty and self.fault == "nan":
                signal[len(signal) // 2] = np.nan
            if faulty and self.fault == "short":
                signal = signal[:-1]
            out[modality] = signal
        return out


def twin_ioc(
    state: TwinState, prefix: str, speed_um_s: float, acquire_s: float, tick_s: float
) -> PVGroup:
    """A caproto :class:`PVGroup` serving ``state`` under ``prefix`` (see the module table)."""
    motors: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for axis in ("ROW", "COL"):
        namespace[f"{axis.lower()}_rbv"] = pvproperty(
            name=f"{axis}_RBV", value=0.0, units="um", precision=4, read_only=True
        )
        namespace[f"{axis.lower()}_sp"] = pvproperty(
            name=f"{axis}_SP", value=0.0, units="um", precision=4, put=_mover(axis, motors)
        )
    for modality, info in state.sample.modalities.items():
        if modality not in state.sample.truth:
            continue
        length = info.length
        suffix = modality_pv(modality)
        namespace[f"wave_{modality}"] = pvproperty(
            name=suffix,
            value=[0.0] * length,
            max_length=length,
            dtype=ChannelType.DOUBLE,
            read_only=True,
        )
        namespace[f"axis_{modality}"] = pvproperty(
            name=f"{suffix}_AXIS",
            value=[float(v) for v in info.axis],
            max_length=length,
            dtype=ChannelType.DOUBLE,
            read_only=True,
        )

    async def acquire(group: Any, instance: Any, value: int) -> int:
        if int(value) != 1:
            return 0
        await asyncio.sleep(acquire_s)
        signals = state.signals(group.row_rbv.value, group.col_rbv.value)
        if signals is None:  # fault "hang": never completes
            await asyncio.Event().wait()
        for modality, signal in (signals or {}).items():
            await getattr(group, f"wave_{modality}").write(signal.tolist())
        return 0

    namespace["acquire"] = pvproperty(name="ACQUIRE", value=0, put=acquire)
    group_type = type("TwinIOC", (PVGroup,), namespace)
    group = group_type(prefix=prefix)
    group.speed_um_s, group.tick_s = speed_um_s, tick_s
    return group


def _mover(axis: str, motors: dict[str, Any]) -> Callable[..., Awaitable[float]]:
    """The putter of ``axis``'s setpoint: start a move of the readback at the group's speed."""

    async def put(group: Any, instance: Any, value: float) -> float:
        running = motors.pop(axis, None)
        if running is not None:
            running.cancel()
        motors[axis] = asyncio.get_running_loop().create_task(_move(group, axis, float(value)))
        return value

    return put


async def _move(group: Any, axis: str, target: float) -> None:
    """Move ``axis``'s readback to ``target`` at the group's speed, one tick at a time."""
    readback = getattr(group, f"{axis.lower()}_rbv")
    position = float(readback.value)
    step = group.speed_um_s * group.tick_s
    while not math.isclose(position, target, abs_tol=1e-9):
        position = (
            target
            if abs(target - position) <= step
            else position + math.copysign(step, target - position)
        )
        await asyncio.sleep(group.tick_s)
        await readback.write(position)


def ca_environment(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The Channel Access settings of a client (and server) isolated on ``host:port``."""
    return {
        "EPICS_CA_ADDR_LIST": host,
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_SERVER_PORT": str(port),
    }


def free_ca_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (Channel Access serves on both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((host, port))
        except OSError:
            continue
        return port


@dataclass
class SimulatorProcess:
    """A running simulator IOC (a subprocess): its port, prefix and client environment."""

    process: subprocess.Popen
    port: int
    prefix: str
    env: dict[str, str]

    def stop(self) -> None:
        """Terminate the IOC (kill it if it does not stop within 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(
    sample: Mapping[str, Any],
    *,
    seed: int = 0,
    prefix: str = "SIM:",
    port: int | None = None,
    options: Sequence[str] = (),
    log: Path | None = None,
    ready_timeout_s: float = 60.0,
) -> SimulatorProcess:
    """Start the simulator for ``sample`` (a sample spec ``{kind, params}``) on loopback.

    Args:
        sample: The sample spec it replays.
        seed: Seed of a simulated sample.
        prefix: PV prefix.
        port: Channel Access port (default: a free one).
        options: Further command-line options (``["--fault", "nan"]``, ``["--speed", "50"]``).
        log: File for the IOC's output (default: discarded).
        ready_timeout_s: How long to wait for it to serve.

    Raises:
        RuntimeError: It exited or did not serve within ``ready_timeout_s``.
    """
    port = free_ca_port() if port is None else port
    env = {**os.environ, **ca_environment(port)}
    command = [sys.executable, "-m", "coscope.instruments.epics_ioc", "--sample"]
    command += [json.dumps(dict(sample)), "--seed", str(seed), "--prefix", prefix, *options]
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the simulator IOC exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return SimulatorProcess(process, port, prefix, ca_environment(port))
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the simulator IOC did not serve on port {port} in {ready_timeout_s} s")


def spec_options(prefix: str, modalities: Sequence[str]) -> dict[str, Any]:
    """The ``epics`` instrument options that drive this simulator's PVs under ``prefix``."""
    return {
        "prefix": prefix,
        "positioners": [
            {"setpoint": "ROW_SP", "readback": "ROW_RBV", "tolerance": 0.001},
            {"setpoint": "COL_SP", "readback": "COL_RBV", "tolerance": 0.001},
        ],
        "trigger": "ACQUIRE",
        "signals": {
            m: {"waveform": modality_pv(m), "axis": f"{modality_pv(m)}_AXIS"} for m in modalities
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator until interrupted (see the module docstring for the options)."""
    parser = argparse.ArgumentParser(prog="python -m coscope.instruments.epics_ioc")
    parser.add_argument("--sample", required=True, help="sample spec as JSON {kind, params}")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (simulated samples)")
    parser.add_argument("--prefix", default="SIM:", help="PV name prefix")
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on")
    parser.add_argument("--speed", type=float, default=200.0, help="motor speed, um/s")
    parser.add_argument("--acquire-s", type=float, default=0.05, help="acquisition time, s")
    parser.add_argument("--tick", type=float, default=0.01, help="motor update period, s")
    parser.add_argument("--fault", choices=FAULTS, default="none", help="injected fault")
    parser.add_argument("--fault-after", type=int, default=0, help="good acquisitions first")
    args = parser.parse_args(argv)
    spec = json.loads(args.sample)
    sample = build_sample(spec["kind"], dict(spec.get("params") or {}), args.seed)
    state = TwinState(sample, args.fault, args.fault_after)
    ioc = twin_ioc(state, args.prefix, args.speed, args.acquire_s, args.tick)
    run(ioc.pvdb, interfaces=[args.host], log_pv_names=False)


if __name__ == "__main__":
    main()
