"""Import layering: the campaign package is plain Python; Prefect and Dask sit at the edge."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_importing_the_campaign_loop_loads_neither_prefect_nor_dask() -> None:
    code = (
        "import coscope.campaign, coscope.campaign.loop, sys; "
        "bad = {'prefect', 'dask', 'distributed'} & {m.split('.')[0] for m in sys.modules}; "
        "assert not bad, sorted(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_models_never_import_agents() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in sorted((SRC / "coscope" / "models").rglob("*.py"))
        if re.search(r"^\s*(from|import) coscope\.agents", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []
