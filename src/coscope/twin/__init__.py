"""Digital twins from co-navigation: the artefact, its MLflow model, its report."""

from __future__ import annotations

from coscope.twin.artefact import DigitalTwin, save_pyfunc

__all__ = ["DigitalTwin", "save_pyfunc"]
