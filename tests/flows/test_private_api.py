"""The private Prefect API of a campaign process: a new run folder's database starts from a
copy of a freshly migrated one kept in the user's cache, which never holds a run."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from coscope.infra.prefect_api import LocalPrefectAPI, database_file, database_template

pytestmark = pytest.mark.slow


def _rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute(f"select count(*) from {table}").fetchone()[0])


def _create_flow(url: str) -> None:
    request = urllib.request.Request(
        f"{url}/flows/",
        data=json.dumps({"name": "kept-out-of-the-template"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def test_a_new_run_folder_starts_from_the_migrated_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    template = database_template()
    assert template.parent == tmp_path / "cache" / "coscope" and not template.exists()

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "first"))
    first = LocalPrefectAPI(tmp_path / "first" / "server.log")
    assert database_file() == tmp_path / "first" / "prefect.db"
    first.spawn()
    try:
        _create_flow(first.wait_ready(600))  # kept after the copy: not in the template
    finally:
        first.stop()
    assert template.is_file()
    assert _rows(template, "flow") == 0 and _rows(template, "block_type") > 0
    assert _rows(tmp_path / "first" / "prefect.db", "flow") == 1

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "second"))
    (tmp_path / "second").mkdir()
    second = LocalPrefectAPI(tmp_path / "second" / "server.log")
    second.spawn()
    try:
        assert (tmp_path / "second" / "prefect.db").is_file()  # copied before the server ran
        _create_flow(second.wait_ready(600))
    finally:
        second.stop()
    assert _rows(tmp_path / "second" / "prefect.db", "flow") == 1
    assert _rows(template, "flow") == 0  # the copy is the run folder's, not the cache's
