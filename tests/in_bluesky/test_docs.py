"""docs/bluesky.md runs as a user would paste it: two runs of the plan, one campaign."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from event_model import DocumentNames, schema_validators

from coscope.storage import TraceStore

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bluesky.md"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/bluesky.md has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "bluesky_example"}
    exec(compile("\n".join(blocks), str(DOCS), "exec"), namespace)
    store = TraceStore.open(tmp_path / "runs/bluesky-film/trace.zarr", "r")
    assert store.counts()["decisions"] == store.counts()["measurements"] == 18
    assert store.get_attr("status") == "finished"
    documents = namespace["documents"]
    for name, doc in documents:
        schema_validators[DocumentNames(name)].validate(doc)
    stops = [doc for name, doc in documents if name == "stop"]
    assert [s["num_events"] for s in stops] == [{"primary": 10}, {"primary": 8}]
    events = [doc for name, doc in documents if name == "event"]
    assert [e["data"]["coscope_step"] for e in events] == list(range(18))
    from mlflow.tracking import MlflowClient  # one MLflow run across both sessions

    client = MlflowClient(f"sqlite:///{(tmp_path / 'runs/bluesky-film/mlflow.db').resolve()}")
    history = client.get_metric_history(store.get_attr("mlflow_run_id"), "best_so_far")
    assert sorted(int(m.step) for m in history) == list(range(18))
    assert namespace["summary"]["status"] == "finished"
