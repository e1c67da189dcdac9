"""A campaign never becomes impossible to continue: bad interventions are refused, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.campaign.inbox import Inbox
from coscope.campaign.live import stored_settings
from coscope.campaign.steering import REFUSAL, REJECTED
from coscope.config import parse_spec
from coscope.infra.compose import effective_campaign
from coscope.storage import TraceStore
from coscope.types import Intervention
from tests.campaign.test_loop import _run, _spec

OFF_AXIS = {"name": "window_integral", "modality": "beps_loop", "params": {"lo": 100, "hi": 200}}


def _settings(path: Path):
    store = TraceStore.open(path, "r")
    return stored_settings(store, parse_spec(effective_campaign(store)))


def test_poisoned_intervention_in_the_trace_is_skipped_on_resume(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 6})
    _run(spec)
    with TraceStore.open(spec.resolved_store(), "a") as store:  # as an older version wrote it
        store.append_intervention(Intervention("scalarizer", OFF_AXIS, step=6, who="x"))
    outcome, ctx = _run(_spec(tmp_path, budget={"max_measurements": 8}))
    assert outcome.status == "finished" and outcome.n_measurements == 8
    items = [i for i in ctx.store.interventions() if i.kind != "spec"]  # spec: the new budget
    assert [i.kind for i in items] == ["scalarizer", REFUSAL]
    assert items[1].payload["refuses"] == 0 and "window" in items[1].payload[REJECTED]
    assert _settings(spec.resolved_store()).scalarizer["name"] == "loop_area"
    _run(_spec(tmp_path, budget={"max_measurements": 9}))  # refused once, not again
    assert [i.kind for i in TraceStore.open(spec.resolved_store()).interventions()].count(
        REFUSAL
    ) == 1


def test_request_that_fails_when_adopted_is_recorded_as_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation without the probe (as if it missed the case): adopting fails, nothing changes."""
    import coscope.campaign.live as live
    from coscope.campaign.adopt import facts_of

    spec = _spec(tmp_path, budget={"max_measurements": 6})
    _run(spec)
    monkeypatch.setattr(
        live, "campaign_facts", lambda store, spec: facts_of(spec, store.sample_shape, {})
    )
    Inbox(spec.resolved_store()).post("scalarizer", OFF_AXIS, why="poison")
    outcome, ctx = _run(_spec(tmp_path, budget={"max_measurements": 8}))
    assert outcome.status == "finished" and outcome.n_measurements == 8
    (item,) = [i for i in ctx.store.interventions() if i.kind != "spec"]
    assert item.kind == "scalarizer" and "window" in item.payload[REJECTED]
    assert _settings(spec.resolved_store()).scalarizer["name"] == "loop_area"


def test_inbox_request_with_a_user_scalarizer_returning_nan_is_rejected(tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget={"max_measurements": 5})
    _run(spec)
    broken = {"name": "tests.user_scalarizers:broken", "modality": "beps_loop"}
    Inbox(spec.resolved_store()).post("scalarizer", broken)
    outcome, ctx = _run(_spec(tmp_path, budget={"max_measurements": 6}))
    assert outcome.status == "finished"
    (item,) = [i for i in ctx.store.interventions() if i.kind != "spec"]
    assert "finite number" in item.payload[REJECTED]
