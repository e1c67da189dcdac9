"""Helpers of the EPICS tests and benchmark: a simulator IOC per test, the specs that use it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coscope.instruments.epics_ioc import SimulatorProcess, free_ca_port, launch, spec_options


@contextmanager
def simulator(
    sample: dict[str, Any],
    *,
    seed: int = 0,
    port: int | None = None,
    options: Sequence[str] = (),
    log: Path | None = None,
    prefix: str | None = None,
) -> Iterator[SimulatorProcess]:
    """A caproto IOC replaying ``sample`` on loopback (its own port and, by default, its own
    PV prefix: the CA client caches PV names), stopped on exit; this process's Channel
    Access settings point at it meanwhile."""
    port = free_ca_port() if port is None else port
    prefix = f"T{port}:" if prefix is None else prefix
    ioc = launch(sample, seed=seed, prefix=prefix, port=port, options=options, log=log)
    saved = {key: os.environ.get(key) for key in ioc.env}
    os.environ.update(ioc.env)
    try:
        yield ioc
    finally:
        ioc.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def epics_instrument(
    ioc: SimulatorProcess, modalities: Sequence[str] = ("beps_loop",), **changes: Any
) -> dict[str, Any]:
    """An ``epics`` instrument spec driving ``ioc`` (no latency wrapper, noise 0.01)."""
    options = {**spec_options(ioc.prefix, modalities), "connect_timeout_s": 10.0}
    options.update(changes.pop("options", {}))
    return {
        "name": "afm",
        "kind": "epics",
        "modalities": list(modalities),
        "latency_s": 0.0,
        "noise": 0.01,
        "options": options,
        **changes,
    }


def twin_instrument(modalities: Sequence[str] = ("beps_loop",)) -> dict[str, Any]:
    """The twin's instrument spec: the same stack with the sample's truth measured directly."""
    return {"name": "afm", "modalities": list(modalities), "latency_s": 0.0, "noise": 0.01}
