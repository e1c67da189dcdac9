"""MLflow "models from code" entry of a campaign's surrogate: MLflow copies this file into
the model folder and runs it on load, so the model is found by import, never unpickled.

Only :func:`~coscope.models.surrogate_pyfunc.save_surrogate_pyfunc` points MLflow at this
file; importing it anywhere else sets :class:`~coscope.models.surrogate_pyfunc.SurrogateModel`
as MLflow's current model and has no other effect.
"""

from __future__ import annotations

import mlflow.models

from coscope.models.surrogate_pyfunc import SurrogateModel

mlflow.models.set_model(SurrogateModel())
