"""Requests to a running campaign from outside its loop (Ctrl-C, ``coscope intervene``, Prefect).

The trace has a single writer, so other processes never write into it. They drop a request
into the campaign's inbox, a folder beside the trace (``<store>.inbox/``), one JSON file per
request written atomically (temp file + rename). The loop takes requests between steps,
records each in the trace as an :class:`~coscope.types.Intervention`, then deletes the file.

Every request is signed with the campaign's token (:mod:`coscope.campaign.auth`); the author
recorded is the OS user who owns the request file, and a request whose signature does not
match is recorded as refused (kind ``forged``), never applied.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from coscope.campaign import auth
from coscope.errors import CoscopeError
from coscope.types import Intervention

REJECTED = "rejected"
"""Payload key of a refused request (the same as :data:`coscope.campaign.steering.REJECTED`)."""


MAX_REQUEST_BYTES = 1 << 20
"""A request file larger than this is not a request (a forged or corrupt one): set aside."""


class Inbox:
    """The request folder of the campaign whose trace is at ``store_path``."""

    def __init__(self, store_path: str | Path) -> None:
        store_path = Path(store_path)
        self.store_path = store_path
        self.path = store_path.with_name(store_path.name + ".inbox")

    def post(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        why: str = "",
        who: str | None = None,
    ) -> Path:
        """Leave a request signed with the campaign's token; returns its file.

        ``who`` names what posted it on the user's behalf (``prefect-ui``); it is recorded
        with the OS user who wrote the file; the loop validates the request again when it takes it
        (:mod:`coscope.campaign.live`).

        Raises:
            ConfigError: The campaign's token cannot be read by this user.
        """
        token = auth.read_token(self.store_path)
        auth.private_folder(self.path)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        request = {
            "kind": kind,
            "payload": payload or {},
            "who": who or "",
            "why": why,
            "t": time.time(),
            "name": name,
        }
        tmp = self.path / f".{name}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"request": request, "signature": auth.sign(request, token)}, file)
        os.replace(tmp, self.path / name)
        return self.path / name

    def pending(self) -> list[Path]:
        """Request files in the order they were posted."""
        if not self.path.is_dir():
            return []
        return sorted(
            p for p in self.path.iterdir() if p.suffix == ".json" and not p.name.startswith(".")
        )

    def peek(self, step: int = 0) -> list[Intervention]:
        """The waiting requests as interventions, in order, without taking them."""
        return [item for _, item in self._read(step)]

    def take(self, step: int, kinds: Collection[str] | None = None) -> list[Intervention]:
        """Read and remove every request (of ``kinds`` only, if given), as interventions
        applied before decision ``step``.

        The caller must record them in the trace; an unreadable file is renamed to
        ``*.unreadable`` (kept for inspection, never taken).
        """
        taken = []
        for path, item in self._read(step):
            if kinds is not None and item.kind not in kinds:
                continue
            taken.append(item)
            path.unlink(missing_ok=True)
        return taken

    def _read(self, step: int) -> list[tuple[Path, Intervention]]:
        out = []
        try:
            token: bytes | None = auth.read_token(self.store_path)
        except CoscopeError:
            token = None  # every request is refused: nobody can have signed it
        for path in self.pending():
            try:
                if path.stat().st_size > MAX_REQUEST_BYTES:
                    raise ValueError("too large for a request")
                data = json.loads(path.read_text())
                owner = path.stat().st_uid
            except (OSError, ValueError, RecursionError):  # not a request: set it aside
                path.replace(path.with_suffix(".unreadable"))
                continue
            out.append((path, _intervention(data, step, token, auth.os_user(owner), path.name)))
        return out


def _intervention(
    data: Any, step: int, token: bytes | None, author: str, name: str
) -> Intervention:
    """The intervention a request file asks for, or a refused ``forged`` one."""
    request = data.get("request") if isinstance(data, dict) else None
    signature = data.get("signature") if isinstance(data, dict) else None
    problem = "the campaign has no readable token" if token is None else None
    problem = problem or auth.verify(request, signature, token or b"")
    if not isinstance(request, dict):
        request, problem = {}, problem or "unsigned request (no request/signature pair)"
    if problem is None and request.get("name") != name:
        problem = "a signed request copied under another name (replayed)"
    if problem is not None:
        claimed = request or (data if isinstance(data, dict) else {})
        kind = claimed.get("kind", "")
        return Intervention(
            kind=auth.FORGED,
            payload={"claimed_kind": str(kind)[:40], REJECTED: problem},
            step=step,
            who=f"{author} (unverified)",
            why="refused: not signed with the campaign's token",
            t=time.time(),
        )
    payload = request.get("payload", {})
    via = str(request.get("who") or "")
    return Intervention(
        kind=str(request.get("kind", "")),
        payload=dict(payload) if isinstance(payload, dict) else {"value": payload},
        step=step,
        who=author if not via or via == author else f"{via} (OS user {author})",
        why=str(request.get("why", "")),
        t=time.time(),
    )
