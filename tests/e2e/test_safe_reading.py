"""Opening an untrusted trace is safe: no user code imported, no address from it contacted,
no pickle loaded, and every port coscope opens on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coscope.cli import main
from coscope.storage import TraceStore
from tests.campaign.test_loop import _run, _spec

SRC = Path(__file__).resolve().parents[2] / "src"
EVIL = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("imported")
def score(signal, axis):
    return float(signal.max())
"""


@pytest.fixture(scope="module")
def evil_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished trace whose scalarizer is ``evil_h7:score`` (a module beside the trace)."""
    folder = tmp_path_factory.mktemp("evil")
    (folder / "evil_h7.py").write_text(EVIL)
    sys.path.insert(0, str(folder))
    try:
        spec = _spec(
            folder,
            budget={"max_measurements": 5},
            scalarizer={"name": "evil_h7:score", "modality": "beps_loop"},
        )
        _run(spec)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("evil_h7", None)
    (folder / "IMPORTED").unlink()
    return spec.resolved_store()


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "coscope.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_status_never_imports_code_the_trace_names(evil_trace: Path) -> None:
    folder = evil_trace.parents[1]
    done = _cli(folder, "status", str(evil_trace), "--json")
    assert done.returncode == 0, done.stderr
    assert '"best": null' in done.stdout
    assert not (folder / "IMPORTED").exists()


@pytest.mark.parametrize("command", ["replay", "retrace", "report"])
def test_readers_refuse_user_code_unless_allowed(evil_trace: Path, command: str) -> None:
    folder = evil_trace.parents[1]
    done = _cli(folder, command, str(evil_trace), "--out", str(folder / command))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "--allow-user-code" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (folder / "IMPORTED").exists()


def test_replay_runs_user_code_when_allowed(evil_trace: Path) -> None:
    folder = evil_trace.parents[1]
    done = _cli(folder, "replay", str(evil_trace), "--allow-user-code")
    assert done.returncode == 0, done.stderr
    assert (folder / "IMPORTED").exists()
    (folder / "IMPORTED").unlink()


def test_intervene_never_contacts_an_address_from_the_trace(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 4})
    _run(spec)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        with TraceStore.open(spec.resolved_store(), "a") as store:
            store.set_attr("prefect_pause", {"flow_run_id": "0" * 32, "api_url": url, "step": 4})
        assert main(["intervene", str(spec.resolved_store()), "stop"]) == 0
        with pytest.raises(TimeoutError):
            listener.accept()


def test_no_pickle_is_ever_loaded_from_a_file() -> None:
    risky = re.compile(
        r"pickle\.loads?\(|import cloudpickle|allow_pickle=True|"
        r"torch\.load\((?!.*weights_only=True)"
    )
    hits = [
        f"{path}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if risky.search(line)
    ]
    assert hits == []


def test_checkpoints_are_arrays_and_json(tmp_path: Path) -> None:
    from coscope.infra.checkpoints import read_checkpoint, write_checkpoint
    from coscope.models import fit_model

    rng = np.random.default_rng(0)
    X, y = rng.random((8, 2)), rng.random(8)
    state = fit_model("gp", X, y, 0, 20)
    meta, arrays = read_checkpoint(write_checkpoint(state, tmp_path / "m.npz"))
    assert meta["class"] == "GPState" and meta["loss"] == state.loss
    np.testing.assert_array_equal(arrays["X"], X)
    assert any(k.startswith("hyperparameters.") for k in arrays)


def test_local_cluster_listens_on_loopback_only(tmp_path: Path) -> None:
    script = tmp_path / "bind.py"
    script.write_text(
        "import os, psutil\n"
        "from coscope.infra.dask import dask_client\n"
        "if __name__ == '__main__':\n"
        "    with dask_client(None, 1) as c:\n"
        "        pids = {os.getpid(), *[p.pid for p in psutil.Process().children(True)]}\n"
        "        print(sorted({x.laddr.ip for x in psutil.net_connections('inet')\n"
        "                      if x.status == 'LISTEN' and x.pid in pids}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['127.0.0.1']"
