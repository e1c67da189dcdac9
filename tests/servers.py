"""Real servers for the end-to-end tests and the benchmarks: started on loopback free ports,
each in its own session, and torn down with their whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
WORKER = "--nthreads 1 --nworkers 1 --host 127.0.0.1 --no-dashboard"
"""A ``dask worker`` as coscope's LocalCluster runs them: one process, one thread."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Block until ``url`` answers 200; RuntimeError (naming ``log``) when ``proc`` exits or
    ``timeout`` seconds pass (generous: a loaded machine starts a server slowly, never
    wrongly)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the server behind {url} did not start; see {log}")


@contextmanager
def process_group(cmd: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``cmd`` in its own session, working in ``cwd`` (logging to ``cwd/server.log``); its
    whole process group is terminated on exit, killed if it lingers."""
    cwd.mkdir(parents=True, exist_ok=True)
    with (cwd / "server.log").open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def dask_processes(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """``dask scheduler`` + 2 ``dask worker`` processes on loopback, each working in its own
    sub-folder of ``folder``; yields the scheduler's address once both workers joined."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    with ExitStack() as stack:
        stack.enter_context(process_group(scheduler, folder / "scheduler", env))
        for name in ("w1", "w2"):
            worker = [dask, "worker", address, *WORKER.split(), "--name", name]
            worker += ["--local-directory", str(folder / name / "dask-scratch")]
            stack.enter_context(process_group(worker, folder / name, env))
        with Client(address, timeout="600s") as client:
            client.wait_for_workers(2, timeout=600)
        yield address


def engine_env(src: Path, **extra: str) -> dict[str, str]:
    """This environment with one thread per process, ``extra``, and ``src`` first on the
    Python path (the sources under test, for processes that import coscope)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env
