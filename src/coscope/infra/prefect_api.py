"""A private, ephemeral Prefect API server for one campaign process.

Prefect's own ephemeral mode starts the same uvicorn app, but from whichever process first
needs it (so every Dask worker would start one) and in our process group (so a terminal's
Ctrl-C kills it while the campaign still needs it: uvicorn installs its own SIGINT handler).
This starts it once, in its own session, tied to our lifetime: Linux's parent-death signal
stops it even when the campaign is killed with SIGKILL.

A new run folder's database needs Prefect's migrations (~10 s of CPU). The first private API
of a Prefect version keeps a copy of its freshly migrated database in the user's cache
(``~/.cache/coscope``); later run folders start from a copy of it, and their API is ready in
the time Prefect takes to import.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import closing
from pathlib import Path

from coscope.errors import ConfigError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_file() -> Path | None:
    """The sqlite file a Prefect API started now uses (its settings read from the
    environment: ``PREFECT_HOME``, a database URL), or None for another database (a
    configured PostgreSQL)."""
    from prefect.settings import Settings

    url = Settings().server.database.connection_url
    value = url.get_secret_value() if url is not None else ""
    prefix = "sqlite+aiosqlite:///"
    return Path(value.removeprefix(prefix)) if value.startswith(prefix) else None


def database_template() -> Path:
    """Where a freshly migrated database of this Prefect version is kept."""
    import prefect

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "coscope" / f"prefect-{prefect.__version__}.db"


def _copy_database(source: Path, target: Path) -> None:
    """Copy an sqlite database consistently (its write-ahead log included), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(partial)) as dst:
        src.backup(dst)
    os.replace(partial, target)


class LocalPrefectAPI:
    """``uvicorn prefect.server.api.server:create_app`` on a free loopback port.

    Args:
        log_path: File for the server's output (its database lives in ``PREFECT_HOME``).
    """

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._log_path = log_path
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._error: str | None = None
        self._database = database_file()
        self._new_database = self._database is not None and not self._database.exists()

    def spawn(self) -> None:
        """Start the server process (from the main thread: the death signal follows it)."""
        import prefect
        from prefect.settings import get_current_settings

        env = {
            **os.environ,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        env.pop("PREFECT_API_URL", None)
        template = database_template()
        if self._new_database and self._database is not None and template.is_file():
            shutil.copyfile(template, self._database)  # migrated once: start from the copy
            self._new_database = False
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(Path(prefect.__file__).parent.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )
        log.close()

    def wait_ready(self, timeout: float) -> str:
        """Block until ``/api/health`` answers; returns the API URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        self._keep_template()
                        return self.url
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ConfigError(
            f"the local Prefect API did not start within {timeout:.0f} s (see {self._log_path}); "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL to a "
            "running `prefect server`."
        )

    def _keep_template(self) -> None:
        """After migrating a new database (before any flow ran on it), keep a copy of it for
        the next run folders; a cache that cannot be written only costs them the migration."""
        template = database_template()
        if not self._new_database or self._database is None or template.exists():
            return
        try:
            _copy_database(self._database, template)
        except (OSError, sqlite3.Error):
            pass

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
