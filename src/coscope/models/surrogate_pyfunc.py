"""A fitted exact GP as an MLflow ``pyfunc`` model (saved from code, its state as ``.npz``).

At every checkpoint the campaign's surrogate is logged and registered as
``<campaign>-surrogate`` (docs/trace.md, "MLflow"), beside the digital twin: anyone with the
registry can load a version and predict, without coscope's store. The model folder holds the
checkpoint written by :func:`coscope.infra.checkpoints.write_checkpoint` (arrays and JSON, no
pickle) and MLflow's copy of :mod:`coscope.models.surrogate_pyfunc_code`, found by import on
load: nothing is unpickled.

Input: a frame with one float column ``x0 … x{d-1}`` per model input (the space's unit
coordinates, e.g. ``row / (H - 1)``, ``col / (W - 1)`` on a pixel grid). Output: columns
``mean`` and ``std`` of the latent target, in the scalarizer's units.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from coscope.infra.checkpoints import read_checkpoint, write_checkpoint
from coscope.models.gp import GPState, load_model, predict

STATE_FILE = "surrogate.npz"


def gp_state_from_checkpoint(path: str | Path) -> GPState:
    """The :class:`GPState` a checkpoint of one holds (ValueError for any other state)."""
    meta, arrays = read_checkpoint(path)
    if meta.get("class") != "GPState":
        raise ValueError(f"{path} holds a {meta.get('class')}, not a GPState checkpoint")
    prefix = "hyperparameters."
    return GPState(
        X=arrays["X"],
        y=arrays["y"],
        hyperparameters={k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
        loss=float(meta["loss"]),
        seconds=float(meta["seconds"]),
        seed=int(meta.get("seed", 0)),
    )


class SurrogateModel(PythonModel):
    """``predict(frame x0..x{d-1}) -> frame mean, std`` of the checkpointed exact GP."""

    def load_context(self, context: Any) -> None:
        self.state = gp_state_from_checkpoint(context.artifacts["surrogate"])
        self.model = load_model(self.state)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """Posterior mean and std at the rows of ``model_input`` (the hint: a frame)."""
        d = self.state.X.shape[1]
        X = np.column_stack([np.asarray(model_input[f"x{i}"], dtype=np.float64) for i in range(d)])
        mean, std = predict(self.model, X)
        return pd.DataFrame({"mean": mean, "std": std})


def save_surrogate_pyfunc(state: GPState, folder: str | Path) -> Path:
    """Write ``state`` as an MLflow pyfunc model folder (signature: ``x0..`` in, ``mean``,
    ``std`` out; no requirement inference: fast)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from coscope.models import surrogate_pyfunc_code

    d = state.X.shape[1]
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f"x{i}") for i in range(d)]),
        outputs=Schema([ColSpec("double", "mean"), ColSpec("double", "std")]),
    )
    folder = Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(state, Path(tmp) / STATE_FILE)
        with warnings.catch_warnings():  # no input example: the signature is explicit
            warnings.filterwarnings("ignore", message=".*An input example was not provided")
            mlflow.pyfunc.save_model(
                str(folder),
                python_model=surrogate_pyfunc_code.__file__,
                artifacts={"surrogate": str(path)},
                signature=signature,
                pip_requirements=["numpy", "pandas", "torch", "gpytorch", "botorch", "coscope"],
            )
    return folder
