"""The MLflow ``pyfunc`` face of a :class:`~coscope.twin.artefact.DigitalTwin`."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from coscope.twin.artefact import DigitalTwin


class TwinModel(mlflow.pyfunc.PythonModel):
    """``predict(frame with row, col) -> frame``: one twin loop per row (columns ``v0..``)."""

    def load_context(self, context: Any) -> None:
        self.twin = DigitalTwin.load(context.artifacts["twin"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """Twin loops at ``model_input``'s ``row``/``col`` (the hint tells MLflow: a frame)."""
        h, w = self.twin.shape
        rows = np.asarray(model_input["row"], dtype=int)
        cols = np.asarray(model_input["col"], dtype=int)
        if np.any((rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)):
            raise ValueError(f"row/col outside the twin's {h} x {w} grid")
        loops = self.twin.predict(rows * w + cols)["twin"]
        return pd.DataFrame(loops, columns=[f"v{i}" for i in range(loops.shape[1])])
