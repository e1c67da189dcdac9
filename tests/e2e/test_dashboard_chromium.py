"""``coscope dashboard`` in a real headless Chromium while a real campaign runs.

The campaign is driven step by step through the Python API in this process (it holds the
trace's writer lock); ``coscope dashboard`` runs as a subprocess reading the trace; Chromium
loads the URL the command printed. Checked: the page shows the campaign and its maps, updates
after new measurements, and an intervention posted from the page is honoured by the
campaign's next decision and recorded in the trace as posted by the dashboard. Waits only
detect hangs (generous deadlines), nothing is timed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coscope.storage import TraceStore
from tests.e2e.chromium import Chromium, chromium_executable
from tests.report.live_campaign import Stepper, small_spec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_executable() is None, reason="chromium is not installed (`make chromium`)"
    ),
]
SRC = Path(__file__).resolve().parents[2] / "src"
DEADLINE_S = 120.0


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[Stepper, str]]:
    """A running campaign with 4 measurements and its dashboard's URL."""
    stepper = Stepper(small_spec(tmp_path))
    stepper.step(4)
    log = (tmp_path / "dashboard.log").open("w+")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "coscope.cli", "dashboard", str(stepper.store)),
            *("--port", "0", "--map-interval", "0", "--poll", "0.5"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline, url = time.monotonic() + DEADLINE_S, None
        while url is None:
            assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
            assert time.monotonic() < deadline, "coscope dashboard printed no URL"
            text = (tmp_path / "dashboard.log").read_text()
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", text)
            url = found.group(0) if found else None
            time.sleep(0.2)
        yield stepper, url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            log.close()
            stepper.close()
        text = (tmp_path / "dashboard.log").read_text()
        assert code == 0 and "Traceback" not in text and "dashboard stopped" in text, text


def _shows(n: int) -> str:
    """JS: the page shows ``n`` measurements and maps drawn from them."""
    return (
        f"document.getElementById('measured').textContent === '{n}' && "
        f"document.getElementById('maps').dataset.version === '{n}' && "
        "document.getElementById('maps').complete && "
        "document.getElementById('maps').naturalWidth > 0"
    )


def test_the_page_follows_the_campaign_and_steers_it(dashboard, tmp_path: Path) -> None:
    stepper, url = dashboard
    with Chromium(tmp_path) as browser:
        browser.navigate(url)
        browser.wait_for(_shows(4), what="the campaign with 4 measurements and its maps")
        assert browser.evaluate("document.getElementById('name').textContent") == "— live"
        assert browser.evaluate("document.querySelectorAll('#decisions tr').length") == 5
        assert browser.evaluate("document.querySelectorAll('#timeline rect').length") == 4

        stepper.step(3)  # new measurements arrive: the page follows without a reload
        browser.wait_for(_shows(7), what="7 measurements")
        assert browser.evaluate("document.querySelectorAll('#decisions tr').length") == 8
        assert browser.evaluate("document.querySelectorAll('#curve circle').length") == 7

        points = json.dumps({"points": [[1, 2]]})
        browser.evaluate(
            "(() => { const k = document.getElementById('kind'); k.value = 'seed_points';"
            f" document.getElementById('payload').value = {json.dumps(points)};"
            " document.getElementById('why').value = 'from the page';"
            " document.getElementById('post').click(); return true; })()"
        )
        posted = browser.wait_for(
            "document.getElementById('post-result').textContent.startsWith('posted') && "
            "document.getElementById('post-result').textContent",
            what="the intervention posted",
        )
        assert "seed_points" in posted
        proposal = stepper.ask()  # the campaign's next decision honours the request
        assert (proposal.location.row, proposal.location.col) == (1, 2)
        stepper.tell(proposal)
        browser.wait_for(_shows(8), what="8 measurements")
        browser.wait_for(
            "document.getElementById('interventions').textContent.includes('seed_points') && "
            "document.getElementById('interventions').textContent.includes('applied')",
            what="the intervention recorded",
        )

        browser.evaluate(
            "(() => { document.getElementById('kind').value = 'exclude';"
            " document.getElementById('payload').value = '{\"rect\": [0, 0, 99, 99]}';"
            " document.getElementById('post').click(); return true; })()"
        )
        refused = browser.wait_for(
            "document.querySelector('#post-result .err') && "
            "document.querySelector('#post-result .err').textContent",
            what="the invalid request refused",
        )
        assert "rect" in refused
        browser.screenshot(tmp_path / "dashboard.png")

    (row,) = TraceStore.open(stepper.store, "r").interventions()
    assert row.kind == "seed_points" and row.payload == {"points": [[1, 2]]}
    assert row.who.startswith("dashboard (OS user") and row.why == "from the page"
