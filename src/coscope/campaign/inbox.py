"""Requests to a running campaign from outside its loop (Ctrl-C, ``coscope intervene``, Prefect).

The trace has a single writer, so other processes never write into it. They drop a request
into the campaign's inbox, a folder beside the trace (``<store>.inbox/``), one JSON file per
request written atomically (temp file + rename). The loop takes requests between steps,
records each in the trace as an :class:`~coscope.types.Intervention`, then deletes the file.
"""

from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from coscope.types import Intervention


class Inbox:
    """The request folder of the campaign whose trace is at ``store_path``."""

    def __init__(self, store_path: str | Path) -> None:
        store_path = Path(store_path)
        self.path = store_path.with_name(store_path.name + ".inbox")

    def post(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        why: str = "",
        who: str | None = None,
    ) -> Path:
        """Leave a request (``who`` defaults to the user name); returns its file.

        The loop validates it again when it takes it (:mod:`coscope.campaign.live`).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        request = {
            "kind": kind,
            "payload": payload or {},
            "who": who or getpass.getuser(),
            "why": why,
            "t": time.time(),
        }
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.path / f".{name}.partial"
        tmp.write_text(json.dumps(request))
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
        for path in self.pending():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):  # never half-written (atomic rename): set it aside
                path.replace(path.with_suffix(".unreadable"))
                continue
            payload = data.get("payload", {})
            item = Intervention(
                kind=str(data.get("kind", "")),
                payload=dict(payload) if isinstance(payload, dict) else {"value": payload},
                step=step,
                who=str(data.get("who", "")),
                why=str(data.get("why", "")),
                t=time.time(),
            )
            out.append((path, item))
        return out
