"""The digital twin: round trip, report, and registration in MLflow's model registry."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from coscope.infra.tracking import MlflowTracker
from coscope.twin import DigitalTwin
from coscope.twin.report import finish_twin, write_twin_report
from tests.agents.test_conavigation import _run


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    ctx, _ = _run(tmp_path_factory.mktemp("twin"), 22)
    yield ctx
    ctx.store.close()


def test_twin_round_trip_predicts_the_same(campaign, tmp_path: Path) -> None:
    twin = campaign.agent.digital_twin()
    twin.save(tmp_path / "t")
    back = DigitalTwin.load(tmp_path / "t")
    flat = np.arange(0, 14 * 14, 7)
    a, b = twin.predict(flat), back.predict(flat)
    for key in ("twin", "theory", "experiment", "twin_var"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12)
    assert back.theta_names == twin.theta_names
    np.testing.assert_array_equal(back.theta_std, twin.theta_std)
    assert back.discrepancy_map().shape == (14, 14)
    # measured pixels: the twin reproduces what was measured (up to the noise level)
    measured = {loc.flat(14): y for loc, y in campaign.agent.experiments.values()}
    flats = np.array(sorted(measured))
    got = back.predict(flats)["twin"]
    want = np.array([measured[f] for f in flats])
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.1 * np.std(want)
    paths = write_twin_report(back, tmp_path / "report", measured)
    assert [p.name for p in paths] == ["theta_trajectory.png", "twin_maps.png", "loops.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


@pytest.mark.slow  # real MLflow sqlite database and model registry (~15 s)
def test_twin_is_logged_and_registered_in_mlflow(campaign, tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.tracking import MlflowClient

    records: list[logging.LogRecord] = []  # MLflow's own log (warnings go there too)
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("mlflow").addHandler(handler)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "conav", tmp_path / "mlartifacts")
    tracker.start({"name": "conav"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = finish_twin(campaign.agent, tracker, tmp_path / "run", "conav", 22)
    tracker.finish("finished")
    assert summary["registered_model"] == "conav-twin" and summary["registered_version"] == "1"
    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions("name='conav-twin'")
    assert [str(v.version) for v in versions] == ["1"]
    run = client.get_run(tracker.run_id)
    assert "twin.theta.coercive_field" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(tracker.run_id, "twin_report")}
    assert "twin_report/twin_maps.png" in artifacts
    mlflow.set_tracking_uri(uri)
    try:
        with warnings.catch_warnings(record=True) as loading:
            warnings.simplefilter("always")
            model = mlflow.pyfunc.load_model("models:/conav-twin/1")
            out = model.predict(pd.DataFrame({"row": [0, 5], "col": [3, 13]}))
    finally:
        mlflow.set_tracking_uri(None)
        logging.getLogger("mlflow").removeHandler(handler)
    said = [str(w.message) for w in caught + loading] + [r.getMessage() for r in records]
    noise = [m for m in said if any(k in m.lower() for k in ("type hint", "cloudpickle"))]
    assert not noise, noise[0]  # saved from code with a signature: nothing to warn about
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["row", "col"]
    twin = campaign.agent.digital_twin()
    np.testing.assert_allclose(out.to_numpy(), twin.predict(np.array([3, 5 * 14 + 13]))["twin"])
    assert (tmp_path / "run" / "twin" / "artefact" / "twin.npz").exists()
