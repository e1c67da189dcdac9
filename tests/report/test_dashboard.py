"""The dashboard's server (FastAPI TestClient) on a real campaign's trace, and its command.

The campaign is a real one driven step by step through the Python API (the same trace as
``coscope run``); the server reads it read-only while the campaign holds the writer lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coscope.campaign.inbox import Inbox
from coscope.cli import main
from coscope.report.dashboard import TOKEN_HEADER, create_app
from coscope.storage import TraceStore
from tests.report.live_campaign import Stepper, small_spec

TOKEN = "test-token"
AUTH = {TOKEN_HEADER: TOKEN}
DEADLINE_S = 120.0
"""Only detects a hang: the maps are rebuilt on a background thread."""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Stepper, TestClient]]:
    stepper = Stepper(small_spec(tmp_path))
    stepper.step(4)
    with TestClient(create_app([stepper.store], TOKEN, map_interval_s=0)) as client:
        yield stepper, client
    stepper.close()


def _state(client: TestClient) -> dict:
    r = client.get("/api/campaigns/0/state", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def _maps_for(client: TestClient, n: int) -> dict:
    """The state once the maps show ``n`` measurements."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        state = _state(client)
        assert not state["maps"]["error"], state["maps"]["error"]
        if state["maps"]["ready"] and state["maps"]["version"] == n:
            return state
        time.sleep(0.2)
    raise AssertionError(f"the maps never showed {n} measurements")


def test_state_shows_the_campaign_and_follows_it(live) -> None:
    stepper, client = live
    state = _state(client)
    assert state["status"]["campaign"] == "live" and state["status"]["status"] == "running"
    assert len(state["measured"]) == 4 and state["shape"] == [12, 12]
    assert state["curve"]["n"] == [1, 2, 3, 4]
    assert state["curve"]["best"] == sorted(state["curve"]["best"])  # best so far never drops
    log = state["decisions"]
    assert [d["step"] for d in log] == [3, 2, 1, 0]  # newest first
    assert {d["state"] for d in log} == {"measured"} and "model_version" in log[0]
    assert [t["instrument"] for t in state["timeline"]] == ["afm"] * 4
    assert "seed_points" in state["kinds"] and "pause" in state["kinds"]

    pending = stepper.ask()  # decided, not measured: shown pending
    state = _state(client)
    assert state["pending"] == [
        {
            "step": pending.step,
            "instrument": "afm",
            "location": [pending.location.row, pending.location.col],
        }
    ]
    assert state["decisions"][0]["state"] == "pending"
    stepper.tell(pending)
    stepper.step(1)
    assert len(_state(client)["measured"]) == 6


def test_maps_are_drawn_and_redrawn_after_new_measurements(live) -> None:
    stepper, client = live
    state = _maps_for(client, 4)
    png = client.get("/api/campaigns/0/maps.png", params={"token": TOKEN})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert state["maps"]["rmse"] is not None  # the synthetic film knows its truth
    stepper.step(2)
    state = _maps_for(client, 6)
    assert [n for n, _ in state["maps"]["rmse_history"]] == [4, 6]


def test_a_posted_intervention_is_honoured(live) -> None:
    stepper, client = live
    r = client.post(
        "/api/campaigns/0/intervene",
        headers=AUTH,
        json={"kind": "seed_points", "payload": {"points": [[1, 2]]}, "why": "look there"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["payload"] == {"points": [[1, 2]]}
    assert _state(client)["inbox"] == 1
    proposal = stepper.ask()  # the loop takes the request before deciding
    assert (proposal.location.row, proposal.location.col) == (1, 2)
    (row,) = TraceStore.open(stepper.store, "r").interventions()
    assert row.kind == "seed_points" and row.why == "look there"
    assert row.who.startswith("dashboard (OS user")
    shown = _state(client)["interventions"]
    assert shown[0]["kind"] == "seed_points" and shown[0]["rejected"] is None


@pytest.mark.parametrize(
    ("headers", "params"),
    [({}, {}), ({TOKEN_HEADER: "forged"}, {}), ({}, {"token": TOKEN})],
    ids=["no token", "wrong token", "token only in the URL"],
)
def test_posts_without_the_token_in_the_header_are_refused(live, headers, params) -> None:
    stepper, client = live
    r = client.post(
        "/api/campaigns/0/intervene", headers=headers, params=params, json={"kind": "stop"}
    )
    assert r.status_code == 403 and r.json()["error"].endswith(".")
    r = client.post("/api/campaigns/0/answer", headers=headers, params=params, json={})
    assert r.status_code == 403
    assert Inbox(stepper.store).pending() == []


def test_reads_need_the_token(live) -> None:
    _, client = live
    assert client.get("/").status_code == 403
    assert client.get("/api/campaigns/0/state").status_code == 403
    assert client.get("/api/campaigns/0/maps.png", params={"token": "x"}).status_code == 403
    page = client.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and 'id="maps"' in page.text and "__POLL_MS__" not in page.text
    assert client.get("/api/campaigns", headers=AUTH).json()[0]["name"] == "live"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "policy", "payload": {"name": "nope"}}, "unknown policy"),
        ({"kind": "warp"}, "unknown intervention kind"),
        ({"kind": "exclude", "payload": {"rect": [0, 0, 99, 99]}}, "rect"),
        ({"kind": "seed_points", "payload": [1]}, "JSON object"),
        ({"payload": {}}, '"kind"'),
        ("not json", '"kind"'),
    ],
    ids=["bad policy", "unknown kind", "rect off the grid", "payload a list", "no kind", "text"],
)
def test_invalid_interventions_are_one_sentence_and_post_nothing(live, body, words) -> None:
    stepper, client = live
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    r = client.post("/api/campaigns/0/intervene", headers=AUTH, **kwargs)
    assert r.status_code == 400
    message = r.json()["error"]
    assert words in message and "\n" not in message and message.endswith("."), message
    assert Inbox(stepper.store).pending() == []


def test_an_unknown_campaign_is_404(live) -> None:
    _, client = live
    r = client.get("/api/campaigns/3/state", headers=AUTH)
    assert r.status_code == 404 and "shows 1" in r.json()["error"]


def test_several_campaigns_at_once(live, tmp_path: Path) -> None:
    stepper, _ = live
    other = Stepper(small_spec(tmp_path / "other", name="other", policy={"name": "random"}))
    try:
        other.step(2)
        with TestClient(create_app([stepper.store, other.store], TOKEN)) as client:
            listed = client.get("/api/campaigns", headers=AUTH).json()
            assert [c["name"] for c in listed] == ["live", "other"]
            assert len(_state(client)["measured"]) == 4
            r = client.get("/api/campaigns/1/state", headers=AUTH)
            assert r.json()["status"]["campaign"] == "other" and len(r.json()["measured"]) == 2
            r = client.post(
                "/api/campaigns/1/intervene", headers=AUTH, json={"kind": "pause", "why": "x"}
            )
            assert r.status_code == 200
        assert len(Inbox(other.store).pending()) == 1 and Inbox(stepper.store).pending() == []
    finally:
        other.close()


def test_an_approval_answered_from_the_dashboard(tmp_path: Path) -> None:
    stepper = Stepper(small_spec(tmp_path, approval={"required": True}))
    try:
        waiting = stepper.ask()
        with TestClient(create_app([stepper.store], TOKEN, map_interval_s=0)) as client:
            (shown,) = _state(client)["approvals"]
            assert shown["step"] == waiting.step and str(waiting.step) in shown["text"]
            r = client.post(
                "/api/campaigns/0/answer",
                headers=AUTH,
                json={"step": waiting.step, "action": "reject", "reason": "scratch there"},
            )
            assert r.status_code == 200, r.text
            again = client.post(
                "/api/campaigns/0/answer", headers=AUTH, json={"step": waiting.step, "action": "x"}
            )
            assert again.status_code == 400
            after = stepper.ask("afm")  # takes the answer, then decides anew
            assert after.step == waiting.step + 1
            assert _state(client)["approvals"][0]["step"] == after.step
        (row,) = TraceStore.open(stepper.store, "r").interventions()
        assert row.kind == "approval" and row.payload["answer"] == "rejected"
        assert row.who.startswith("dashboard")
    finally:
        stepper.close()


def test_the_command_refuses_a_path_that_is_not_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no experimental trace") and "\n" not in err
    (tmp_path / "folder").mkdir()
    assert main(["dashboard", str(tmp_path / "folder"), "--port", "99999"]) == 2
    assert "not a coscope experimental trace" in capsys.readouterr().err
