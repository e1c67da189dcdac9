"""The per-campaign token file, ``<store>.token``: created with the trace, owner-only.

Requests to the campaign are signed with it (:mod:`coscope.campaign.auth`). It lives beside
the trace, never inside, so that sharing a trace never shares the right to steer it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from coscope.errors import ConfigError


def token_path(store_path: str | Path) -> Path:
    """``<store>.token``: beside the trace, so that sharing the trace never shares it."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".token")


def ensure_token(store_path: str | Path) -> Path:
    """Create the campaign's token (owner-only) unless it exists; returns its path."""
    path = token_path(store_path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return path


def read_token(store_path: str | Path) -> bytes:
    """The campaign's token.

    Raises:
        ConfigError: No token, one this user cannot read, or one others could read too.
    """
    path = token_path(store_path)
    try:
        info = path.stat()
        token = path.read_text().strip().encode()
    except FileNotFoundError:
        raise ConfigError(
            f"the campaign has no token file '{path}'; run or resume it once to create one."
        ) from None
    except OSError:
        raise ConfigError(
            f"you cannot read the campaign's token '{path}': only the user who runs the "
            "campaign may steer it (ask them, or use their account)."
        ) from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"the campaign's token '{path}' is readable by others; make it private with "
            f"`chmod 600 {path}` (requests signed with it so far cannot be trusted)."
        )
    return token
