"""Co-navigation's surrogates are fitted through ``fit_model`` on the loop's executor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.agents.test_conavigation import _run

from coscope.campaign import LocalExecutor
from coscope.errors import ConfigError
from coscope.models.fitting import fit_model, model_kinds
from coscope.models.multioutput_gp import SharedKernelGP


def test_shared_gp_kind_fits_the_same_model_as_in_process() -> None:
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(12, 3))
    Y = np.sin(4 * X[:, :1] + np.linspace(0, 3, 20)[None, :]) + 0.05 * rng.normal(size=(12, 20))
    assert "shared_gp" in model_kinds()
    state = fit_model("shared_gp", X, Y, seed=3, iterations=60)
    here = SharedKernelGP.fit(X, Y)
    model = state.model()
    Xs = rng.uniform(size=(30, 3))
    for a, b in zip(model.predict(Xs), here.predict(Xs), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.loo_mse(), here.loo_mse())
    np.testing.assert_array_equal(model.lengthscale, here.lengthscale)
    record = state.record(4, 12, role="theory")
    assert (record.version, record.step, record.n_train) == (4, 12, 12)
    assert record.hyperparameters["role"] == "theory" and record.hyperparameters["seed"] == 3
    assert record.hyperparameters["where"] == "local" and np.isfinite(record.loss)
    assert fit_model("shared_gp", X, Y, seed=3, iterations=60).loss == state.loss  # repeatable
    with pytest.raises(ConfigError, match="does not take option"):
        fit_model("shared_gp", X, Y, seed=3, iterations=60, rank=2)


class CountingExecutor(LocalExecutor):
    """The local executor, noting the kind of every fit it is asked to run."""

    kinds: list[str] = []

    def fit(self, kind, X, y, seed, iterations, options=None):
        CountingExecutor.kinds.append(kind)
        return super().fit(kind, X, y, seed, iterations, options)


def test_loop_runs_every_conavigation_fit_on_its_executor_and_records_it(tmp_path: Path) -> None:
    CountingExecutor.kinds = []
    ctx, outcome = _run(tmp_path, 14, executor_type=CountingExecutor)
    kinds, fits = CountingExecutor.kinds, ctx.store.fits()
    assert outcome.n_measurements == 14 and kinds
    assert set(kinds) == {"shared_gp"}
    # every fit ran on the executor and is in the trace, numbered in order, by role
    assert len(fits) == len(kinds)
    assert [f.version for f in fits] == list(range(len(fits)))
    roles = [f.hyperparameters["role"] for f in fits]
    maps = {f"twin_{name}" for name in ("log_gain", "corr", "offset", "shape")}
    assert set(roles) == {"theory", "experiment"} | maps  # the twin's maps too
    assert all(f.hyperparameters["kind"] == "shared_gp" for f in fits)
    assert [f.step for f in fits] == sorted(f.step for f in fits)
    ctx.store.close()
    # the same seed and data give the same decisions (fits are deterministic)
    again, _ = _run(tmp_path / "again", 14)
    first = [(d.instrument, d.location, repr(d.params)) for d in ctx.store.decisions()]
    assert first == [(d.instrument, d.location, repr(d.params)) for d in again.store.decisions()]
    again.store.close()


def test_resumed_campaign_decides_as_an_uninterrupted_one(tmp_path: Path) -> None:
    ctx, _ = _run(tmp_path / "a", 12)  # stops at 12 (budget), resumed to 18
    ctx.store.close()
    resumed, _ = _run(tmp_path / "a", 18)
    straight, _ = _run(tmp_path / "b", 18)
    key = [(d.step, d.instrument, d.location, repr(d.params)) for d in resumed.store.decisions()]
    assert key == [
        (d.step, d.instrument, d.location, repr(d.params)) for d in straight.store.decisions()
    ]

    # every model of the resumed run is the model the uninterrupted run fitted on the same
    # data, and its refit on the restored data is not recorded a second time
    def fitted(store) -> dict:
        return {
            (f.hyperparameters["role"], f.step, f.n_train): f.hyperparameters["lengthscale"]
            for f in store.fits()
        }

    again, once = fitted(resumed.store), fitted(straight.store)
    assert len(resumed.store.fits()) == len(again) and set(again) == set(once)
    assert again == once
    resumed.store.close()
    straight.store.close()
