"""A trace naming a user's instrument kind is read like one naming a user scalarizer: status
never imports it, replay/retrace/report refuse it unless --allow-user-code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coscope.storage import TraceStore
from coscope.trust import user_code_in
from tests.campaign.test_loop import _run, _spec

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme_afm"
EVIL = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("imported")
from acme_afm import make_afm
"""


@pytest.fixture(scope="module")
def kind_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished trace whose instrument kind is ``evil_kind_h12:make_afm`` (beside it)."""
    folder = tmp_path_factory.mktemp("evil-kind")
    (folder / "evil_kind_h12.py").write_text(EVIL)
    sys.path[:0] = [str(folder), str(ACME)]
    try:
        instrument = {
            "name": "afm",
            "kind": "evil_kind_h12:make_afm",
            "latency_s": 0.0,
            "options": {"n_voltage": 32},
        }
        spec = _spec(
            folder,
            sample={"kind": "synthetic_film", "params": {"size": 12, "n_voltage": 32}},
            instruments=[instrument],
            budget={"max_measurements": 5},
        )
        _run(spec)
    finally:
        sys.path.remove(str(folder))
        sys.path.remove(str(ACME))
        sys.modules.pop("evil_kind_h12", None)
    (folder / "IMPORTED").unlink()
    return spec.resolved_store()


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ACME)])}
    return subprocess.run(
        [sys.executable, "-m", "coscope.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_trace_names_the_kind_as_user_code(kind_trace: Path) -> None:
    assert user_code_in(TraceStore.open(kind_trace, "r")) == [
        "instrument kind evil_kind_h12:make_afm"
    ]


def test_status_never_imports_the_kind(kind_trace: Path) -> None:
    folder = kind_trace.parents[1]
    done = _cli(folder, "status", str(kind_trace), "--json")
    assert done.returncode == 0, done.stderr
    assert not (folder / "IMPORTED").exists()


@pytest.mark.parametrize("command", ["replay", "retrace", "report"])
def test_readers_refuse_the_kind_unless_allowed(kind_trace: Path, command: str) -> None:
    folder = kind_trace.parents[1]
    done = _cli(folder, command, str(kind_trace), "--out", str(folder / command))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "evil_kind_h12:make_afm" in done.stderr and "--allow-user-code" in done.stderr
    assert not (folder / "IMPORTED").exists()
