# The two commands a user needs: `make demo` and `make test`. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# One torch thread and one BLAS thread per process: on 2 cores oversubscription is the first
# performance bug (see docs/benchmarks.md). Dask workers set the same in their own processes.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
# Keep Prefect and MLflow offline.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install chromium demo typecheck test test-fast lint bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the dashboard's browser test; quiet when installed (apt-get otherwise).
chromium:
	.ci/ensure-chromium

demo: $(STAMP)
	$(BIN)/coscope demo

# Types first (the files `[tool.mypy]` in pyproject.toml lists), then the tests.
typecheck: $(STAMP)
	$(BIN)/python -m mypy

test: typecheck chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/decision_latency.py
	$(BIN)/python benchmarks/learning_curve.py
	$(BIN)/python benchmarks/intervention_latency.py
	$(BIN)/python benchmarks/counterfactual_beps.py

clean:
	rm -rf $(VENV) runs
