"""Serve the live dashboard with uvicorn on one listening socket (``coscope dashboard``)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from coscope.api.opening import use_threads
from coscope.errors import ConfigError
from coscope.report.dashboard import create_app, new_token


def listen(host: str, port: int) -> socket.socket:
    """A bound socket on ``host:port`` (port 0: any free one), ready for uvicorn.

    Raises:
        ConfigError: The address cannot be used (one sentence).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"--host {host!r} is not an address here ({exc}).") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): give another --port (0: any free)."
        ) from None
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    stores: list[Path],
    *,
    host: str,
    port: int,
    map_interval_s: float,
    poll_ms: int,
    allow_user_code: bool,
    echo: Callable[[str], None],
) -> int:
    """Serve the dashboard of ``stores`` until interrupted; prints its URL with ``echo``.

    Returns:
        The exit status (0).
    """
    use_threads(None)  # one torch thread for the map refits (COSCOPE_TORCH_THREADS)
    token = new_token()
    app = create_app(
        stores,
        token,
        map_interval_s=map_interval_s,
        poll_ms=poll_ms,
        allow_user_code=allow_user_code,
    )
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not _loopback(host):
        echo(
            f"warning: listening on {host}, beyond this machine's loopback: anyone who can reach "
            "it and learns the URL can steer these campaigns."
        )
    echo(f"dashboard of {len(stores)} campaign(s): http://{shown}:{bound}/?token={token}")
    echo("(the token in the URL is this launch's password; Ctrl-C stops the dashboard)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it has handled
        pass
    finally:
        sock.close()
    echo("dashboard stopped (the campaigns were only read)")
    return 0
