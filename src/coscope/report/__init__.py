"""Plots, status and the campaign report.

Names are imported on first use: ``coscope status`` (:mod:`coscope.report.status`) starts
without matplotlib and the models that the written report needs.
"""

from __future__ import annotations

from coscope.lazy import lazy_exports

_EXPORTS = {
    "write_learning_curve": "maps",
    "write_maps": "maps",
    "write_report": "campaign",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
