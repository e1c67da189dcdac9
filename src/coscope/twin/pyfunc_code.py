"""MLflow "models from code" entry of the digital twin: MLflow copies this file into the model
folder and runs it on load, so the model is found by import, never unpickled.

Only :func:`~coscope.twin.artefact.save_pyfunc` points MLflow at this file; importing it
anywhere else registers the twin's :class:`~coscope.twin.pyfunc.TwinModel` as MLflow's
current model and has no other effect.
"""

from __future__ import annotations

import mlflow.models

from coscope.twin.pyfunc import TwinModel

mlflow.models.set_model(TwinModel())
