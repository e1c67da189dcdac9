"""The command line behaves like a Unix tool: --version, every command in --help, quiet broken
pipes, progress lines off a terminal, and reports that never overwrite a campaign's own files."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coscope.cli import _parser, main
from coscope.report.maps import _shared_limits
from coscope.report.progress import CampaignProgress
from tests.campaign.test_loop import _run, _spec

SRC = Path(__file__).resolve().parents[1] / "src"


def test_version_and_every_command_in_the_help(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("coscope ")
    commands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert {"run", "resume", "status", "check", "report", "intervene"} <= commands
    assert all(f"    {name} " in text or f"    {name}\n" in text for name in commands)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = _spec(tmp_path_factory.mktemp("cli"), budget={"max_measurements": 5})
    _run(spec)
    return spec.resolved_store()


def test_a_closed_pipe_ends_quietly(finished: Path) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); "
        "from coscope.cli import main; sys.exit(main())"
    )
    shell = (
        f"{sys.executable} -c {code!r} status --json {finished} | true; "
        'echo "rc=${PIPESTATUS[0]}"'
    )
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=300, check=True
    )
    assert "rc=141" in done.stdout and "Traceback" not in done.stderr and done.stderr == ""


def test_progress_off_a_terminal_prints_plain_lines(finished: Path) -> None:
    spec = _spec(finished.parent.parent, budget={"max_measurements": 5})
    out = io.StringIO()  # not a terminal, like `coscope run … | tee log`
    progress = CampaignProgress(finished, spec, stream=out)
    with progress:
        progress.phase("starting engines")
        progress.refresh()
        progress.refresh()  # nothing new: no second line
    lines = out.getvalue().splitlines()
    assert lines[0] == "loop: 5/5 measurements, cost 7.5, best " + lines[0].split("best ")[1]
    assert lines[1:] == ["loop: starting engines"]
    quiet = io.StringIO()
    with CampaignProgress(finished, spec, enabled=False, stream=quiet) as silent:
        silent.phase("x")
        silent.refresh()
    assert quiet.getvalue() == ""


def test_the_html_report_leaves_the_campaigns_own_maps_alone(finished: Path) -> None:
    own = finished.parent / "report" / "maps.png"
    own.parent.mkdir(exist_ok=True)
    own.write_bytes(b"the campaign's own maps")
    assert main(["report", str(finished)]) == 0
    assert own.read_bytes() == b"the campaign's own maps"
    assert (finished.parent / "report" / "html" / "index.html").is_file()


def test_truth_and_prediction_share_one_colour_scale() -> None:
    truth = np.array([[0.0, 1.0], [2.0, np.nan]])
    mean = np.array([[-1.0, 0.5], [1.5, 3.0]])
    assert _shared_limits(truth, mean) == (-1.0, 3.0)
    assert _shared_limits(None, np.full((2, 2), np.nan)) is None


def test_a_ctrl_c_stop_request_the_loop_never_took_is_withdrawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while the report is written (the loop is over) used to leave a stale `stop`
    in the inbox that stopped the next resume at once."""
    import os
    import signal

    from coscope.campaign.inbox import Inbox
    from coscope.cli import _ctrl_c_stops
    from coscope.storage.token import ensure_token

    store = tmp_path / "trace.zarr"
    store.mkdir()
    ensure_token(store)
    with _ctrl_c_stops(store):
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C does
        assert [i.kind for i in Inbox(store).peek()] == ["stop"]
    assert Inbox(store).pending() == []
    assert "withdrawn" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_step_lines_print_the_first_and_last_decision_and_at_most_one_line_per_interval() -> None:
    from coscope.report.step_progress import StepLines

    now = [0.0]
    out = io.StringIO()
    lines = StepLines("report: ", stream=out, every_s=5.0, clock=lambda: now[0])
    for done in range(1, 11):
        now[0] = done * 1.0  # one decision a second
        lines("replay", done, 10)
    lines("retrace", 1, 3)
    assert out.getvalue().splitlines() == [
        "report: replay 1/10 decisions",
        "report: replay 6/10 decisions",
        "report: replay 10/10 decisions",
        "report: retrace 1/3 decisions",
    ]
