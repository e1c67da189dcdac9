"""``coscope intervene``: validated against the stored campaign, one sentence, nothing posted."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.campaign.inbox import Inbox
from coscope.cli import main
from coscope.config import parse_spec
from coscope.infra.compose import create_or_open_store, sample_from_spec
from coscope.types import Intervention


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    spec = parse_spec(
        {
            "name": "cli",
            "sample": {"kind": "synthetic_film", "params": {"size": 16}},
            "run_dir": str(tmp_path / "run"),
        }
    )
    store, _ = create_or_open_store(spec, sample_from_spec(spec.sample, 0))
    store.append_intervention(Intervention("pause", {}, step=0, who="x", why="y"))
    store.close()
    return spec.resolved_store()


def test_valid_request_is_posted_with_normalised_payload(store_path: Path, capsys) -> None:
    assert main(["intervene", str(store_path), "policy", "name=ucb", 'params={"beta": 2}']) == 0
    assert main(["intervene", str(store_path), "exclude", "--json", '{"rect": [0, 0, 1, 1]}']) == 0
    assert main(["intervene", str(store_path), "resume", "--why", "seen enough"]) == 0
    posted = Inbox(store_path).peek()
    assert [(i.kind, i.payload) for i in posted] == [
        ("policy", {"name": "ucb", "params": {"beta": 2}}),
        ("exclude", {"rect": [0, 0, 1, 1]}),
        ("resume", {}),
    ]
    assert posted[2].why == "seen enough"
    assert "not running; it applies it on `coscope resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["pause"], "already paused"),  # the trace says paused
        (["policy", "name=ucb", 'params={"gamma": 1}'], "gamma"),
        (["costs", "xrd=2"], "'xrd' is not in this campaign"),
        (["vote", "step=3", "label=good"], "no measured beps_loop"),
        (["seed_points", "points=[[99, 0]]"], "off the 16 x 16 sample"),
        (["teleport"], "unknown intervention kind"),
        (["policy", "name"], "key=value"),
    ],
)
def test_invalid_request_is_one_sentence_and_posts_nothing(
    store_path: Path, capsys, argv: list[str], words: str
) -> None:
    before = (store_path / "zarr.json").read_bytes()
    assert main(["intervene", str(store_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and words in err and err.count("\n") == 0
    assert Inbox(store_path).peek() == []
    assert (store_path / "zarr.json").read_bytes() == before


def test_pending_requests_count_when_validating(store_path: Path) -> None:
    assert main(["intervene", str(store_path), "resume"]) == 0
    assert main(["intervene", str(store_path), "pause"]) == 0  # valid after the posted resume
    assert main(["intervene", str(store_path), "resume"]) == 0
    assert [i.kind for i in Inbox(store_path).peek()] == ["resume", "pause", "resume"]


def test_list_and_missing_store(store_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["intervene", str(store_path), "--list"]) == 0
    assert "pause" in capsys.readouterr().out
    assert main(["intervene", str(tmp_path / "nowhere.zarr"), "stop"]) == 2
    assert main(["intervene", str(store_path)]) == 2


def test_status_reports_the_steering_state(store_path: Path, capsys) -> None:
    import json

    assert main(["intervene", str(store_path), "resume"]) == 0
    assert main(["status", str(store_path), "--json"]) == 0
    steering = json.loads(capsys.readouterr().out)["steering"]
    assert steering["paused"] is True and steering["inbox"] == 1  # resume not yet taken
    assert steering["interventions"] == 1 and steering["policy"] == "ei"
    assert main(["status", str(store_path)]) == 0
    assert "steering   PAUSED, 1 interventions (0 rejected, 1 waiting)" in capsys.readouterr().out
