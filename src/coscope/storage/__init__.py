"""Storage: the experimental trace (Zarr v3, append-only, crash-consistent).

See ``docs/trace.md`` for the on-disk layout and the commit protocol.
"""

from __future__ import annotations

from coscope.storage.trace import TraceStore

__all__ = ["TraceStore"]
