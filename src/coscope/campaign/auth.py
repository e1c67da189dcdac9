"""Who changed a campaign: requests signed with a per-campaign token only its owner can read.

Creating a campaign's trace creates ``<store>.token`` beside it: 32 random bytes (hex),
mode ``0600``. Whoever posts a request (``coscope intervene``, Ctrl-C, the Prefect UI form,
a theory batch) signs its canonical JSON with HMAC-SHA256 under that token; the loop checks
the signature before anything else, and records as the author the OS user who owns the
request file — who, holding a valid signature, could read the token. A request without a
valid signature is refused and recorded as refused (kind ``forged``), never applied. The
inbox folder and the store are created owner-only (``0700``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
from pathlib import Path
from typing import Any

from coscope.storage.token import ensure_token, read_token, token_path

__all__ = ["ensure_token", "read_token", "token_path", "sign", "verify", "os_user"]

FORGED = "forged"
"""Kind recorded for a request whose signature is missing or wrong (payload: what it claimed)."""


def canonical(request: dict[str, Any]) -> bytes:
    """The bytes a signature covers: sorted, compact JSON of the request."""
    return json.dumps(request, sort_keys=True, separators=(",", ":")).encode()


def sign(request: dict[str, Any], token: bytes) -> str:
    """HMAC-SHA256 of the request under the token, hex."""
    return hmac.new(token, canonical(request), hashlib.sha256).hexdigest()


def verify(request: Any, signature: Any, token: bytes) -> str | None:
    """None when ``signature`` signs ``request`` under ``token``, else why not (one phrase)."""
    if not isinstance(request, dict) or not isinstance(signature, str):
        return "unsigned request (no request/signature pair)"
    if not hmac.compare_digest(sign(request, token), signature):
        return "forged request (its signature does not match the campaign's token)"
    return None


def os_user(uid: int | None = None) -> str:
    """Name of the OS user ``uid`` (default: this process's effective user)."""
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it owner-only (``0700``)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
