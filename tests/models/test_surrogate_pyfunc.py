"""A campaign's exact GP, logged at a checkpoint, is a registered MLflow model that loads
from code (no pickle) and predicts what the surrogate predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coscope.infra.tracking import MlflowTracker
from coscope.models import fit_gp, predict
from coscope.models.surrogate_pyfunc import gp_state_from_checkpoint


def test_a_checkpoint_registers_the_surrogate_as_an_mlflow_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    state = fit_gp(X, y, seed=3, iterations=30)
    tracker = MlflowTracker(uri, "surr", artifact_root=tmp_path / "mlartifacts")
    run_id = tracker.start({"name": "surr"})
    tracker.log_checkpoint(state, 10)
    tracker.log_checkpoint(state, 20)

    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions("name='surr-surrogate'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {run_id}
    folder = tmp_path / "mlartifacts"
    files = [p.name for p in folder.rglob("*") if p.is_file()]
    assert not any(name.endswith((".pkl", ".pickle")) for name in files), files
    assert "surrogate_pyfunc_code.py" in files  # loaded by import, "models from code"

    model = mlflow.pyfunc.load_model("models:/surr-surrogate/2")
    grid = rng.uniform(size=(7, 2))
    out = model.predict(pd.DataFrame({"x0": grid[:, 0], "x1": grid[:, 1]}))
    mean, std = predict(state, grid)
    np.testing.assert_allclose(out["mean"].to_numpy(), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["std"].to_numpy(), std, rtol=1e-10, atol=1e-12)


def test_only_a_gp_checkpoint_becomes_a_gp_state(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from coscope.infra.checkpoints import write_checkpoint

    @dataclass(frozen=True)
    class Other:
        X: np.ndarray

    path = write_checkpoint(Other(np.zeros((2, 1))), tmp_path / "o.npz")
    with pytest.raises(ValueError, match="holds a Other, not a GPState"):
        gp_state_from_checkpoint(path)
