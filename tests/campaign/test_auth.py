"""Who changed what: requests signed with the campaign's owner-only token; forgeries refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from coscope.campaign.auth import FORGED, os_user, token_path
from coscope.campaign.inbox import Inbox
from coscope.campaign.steering import REJECTED
from coscope.cli import main
from coscope.storage import TraceStore
from tests.campaign.test_loop import _run, _spec


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_token_and_inbox_are_owner_only(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 3})
    _run(spec)
    store = spec.resolved_store()
    assert _mode(store) == 0o700 and _mode(token_path(store)) == 0o600
    posted = Inbox(store).post("stop")
    assert _mode(posted.parent) == 0o700 and _mode(posted) == 0o600
    assert len(token_path(store).read_text()) == 64


def test_signed_requests_record_the_os_user_and_forgeries_are_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 5})
    _run(spec)
    store = spec.resolved_store()
    inbox = Inbox(store)
    inbox.post("policy", {"name": "ucb"}, who="$USER=mallory")  # a label, not the author
    forged = json.loads(inbox.post("policy", {"name": "maxvar"}).read_text())
    forged["request"]["payload"] = {"name": "random"}  # changed after signing
    (inbox.path / "00000000000000000002-forged.json").write_text(json.dumps(forged))
    unsigned = {"kind": "stop", "payload": {}, "who": "boss", "why": "", "t": 0}
    (inbox.path / "00000000000000000003-old.json").write_text(json.dumps(unsigned))
    original = inbox.pending()[-1]  # the maxvar request, posted properly
    copy = json.loads(original.read_text())
    (inbox.path / "00000000000000000004-replayed.json").write_text(json.dumps(copy))
    items = inbox.peek()
    assert [i.kind for i in items] == [FORGED, FORGED, FORGED, "policy", "policy"]
    assert "signature does not match" in items[0].payload[REJECTED]
    assert "unsigned" in items[1].payload[REJECTED]
    assert "replayed" in items[2].payload[REJECTED]
    assert items[3].who == f"$USER=mallory (OS user {os_user()})" and items[4].who == os_user()
    outcome, ctx = _run(_spec(tmp_path, budget={"max_measurements": 6}))
    recorded = [i for i in ctx.store.interventions() if i.kind != "spec"]
    assert [(i.kind, REJECTED in i.payload) for i in recorded] == [
        (FORGED, True),
        (FORGED, True),
        (FORGED, True),
        ("policy", False),
        ("policy", False),
    ]
    assert ctx.store.decisions()[-1].policy == "maxvar"  # the forged "random" never applied
    assert outcome.status == "finished"  # the unsigned stop was refused


def test_a_token_others_can_read_is_refused(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 3})
    _run(spec)
    store = spec.resolved_store()
    os.chmod(token_path(store), 0o644)
    assert main(["intervene", str(store), "stop"]) == 2
    err = capsys.readouterr().err
    assert "readable by others" in err and "chmod 600" in err
    assert Inbox(store).pending() == []
    assert TraceStore.open(store).interventions() == []
