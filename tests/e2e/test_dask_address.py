"""An unreachable Dask scheduler in the stored spec never leaves a campaign impossible to resume.

A run whose spec names a scheduler that does not answer stores that address (it is a setting
a re-run may change) and stops in one sentence; `coscope resume --dask-address local` (or
another address) continues on a local cluster and stores the new setting.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from coscope.cli import main
from coscope.storage import TraceStore
from tests.campaign.test_loop import _run, _spec


def _closed_port() -> int:
    with socket.socket() as s:  # bound and closed: nothing listens there now
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_resume_with_another_dask_address_finishes_the_campaign(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 3}, policy={"name": "random"})
    _run(spec)  # three measured, locally
    path = spec.resolved_store()
    bad = f"tcp://127.0.0.1:{_closed_port()}"
    data = spec.to_json_dict() | {"dask_address": bad, "budget": {"max_measurements": 5}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(tmp_path / "spec.yaml"), "--quiet"]) == 2
    assert main(["resume", str(path), "--quiet"]) == 2  # the stored address does not answer
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and "--dask-address local" in err
    assert "Traceback" not in err
    assert main(["resume", str(path), "--quiet", "--dask-address", "nowhere"]) == 2
    assert "not a scheduler address" in capsys.readouterr().err
    assert main(["resume", str(path), "--quiet", "--dask-address", "local"]) == 0
    with TraceStore.open(path, "r") as store:
        assert store.counts()["measurements"] == 5
        assert store.campaign.get("dask_address") is None  # the new setting is kept
    assert main(["resume", str(path), "--quiet"]) == 0  # and later resumes need no flag
