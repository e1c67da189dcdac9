"""Post a validated intervention to a campaign from another process (``coscope intervene``).

Validation happens twice: here, against the campaign's current effective settings (the
trace's interventions plus requests still waiting in the inbox), so a bad request is one
sentence and nothing is posted; and again in the loop when it applies the request.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from coscope.campaign.inbox import Inbox
from coscope.campaign.live import campaign_facts, stored_settings
from coscope.campaign.steering import (
    REJECTED,
    CampaignFacts,
    InterventionError,
    Settings,
    apply,
    validate,
)
from coscope.errors import ConfigError
from coscope.storage import TraceStore
from coscope.types import Intervention

MAX_PAYLOAD_CHARS = 100_000
"""An intervention payload's text is at most this long (rectangles and points, not data)."""


def parse_pairs(pairs: list[str], payload_json: str | None) -> dict[str, Any]:
    """``key=value`` words (values read as JSON when they parse, else strings) + ``--json``."""
    payload: dict[str, Any] = {}
    if payload_json:
        if len(payload_json) > MAX_PAYLOAD_CHARS:
            raise ConfigError(
                f"--json is {len(payload_json)} characters; an intervention payload is at most "
                f"{MAX_PAYLOAD_CHARS}: give its settings, not data."
            )
        try:
            payload = json.loads(payload_json)
        except ValueError:
            raise ConfigError(
                f"--json {payload_json[:80]!r} is not valid JSON; quote it."
            ) from None
        except RecursionError:
            raise ConfigError("--json nests too deeply for an intervention payload.") from None
        if not isinstance(payload, dict):
            raise ConfigError("--json must be a JSON object, e.g. '{\"beta\": 4}'.")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r} is not key=value; write e.g. name=ucb or step=12.")
        if len(text) > MAX_PAYLOAD_CHARS:
            raise ConfigError(
                f"the value of {key[:40]!r} is {len(text)} characters; an intervention payload is "
                f"at most {MAX_PAYLOAD_CHARS}."
            )
        try:
            payload[key] = json.loads(text)
        except ValueError:
            payload[key] = text
        except RecursionError:
            raise ConfigError(f"the value of {key[:40]!r} nests too deeply.") from None
    return payload


def current_settings(store: TraceStore, inbox: Inbox) -> tuple[Settings, CampaignFacts]:
    """Effective settings once the trace's interventions and the inbox's valid requests apply,
    and the facts validators check against."""
    from coscope.config import parse_spec

    spec = parse_spec(store.effective_campaign())
    settings = stored_settings(store, spec)
    facts = campaign_facts(store, spec)
    for item in inbox.peek():
        try:
            payload = validate(item.kind, item.payload, settings, facts)
        except InterventionError:
            continue  # the loop will record it as rejected
        settings = apply(settings, replace(item, payload=payload))
    return settings, facts


def post_intervention(
    store_path: str | Path, kind: str, payload: dict[str, Any], *, why: str = "", who=None
) -> tuple[Path, dict[str, Any]]:
    """Validate and post; returns (request file, normalised payload).

    Raises:
        StoreError: No trace at ``store_path``.
        InterventionError: The request is invalid now (nothing posted).
    """
    store = TraceStore.open(store_path, mode="r")
    inbox = Inbox(store.path)
    settings, facts = current_settings(store, inbox)
    normalised = validate(kind, payload, settings, facts)
    path = inbox.post(kind, payload, why=why, who=who)
    return path, normalised  # a campaign paused in Prefect ends its pause itself


def describe(intervention: Intervention) -> str:
    """One line for listings: step, kind, payload, who, why."""
    payload = json.dumps(intervention.payload)
    payload = payload if len(payload) <= 160 else payload[:160] + "…"
    return (
        f"step {intervention.step:>4}  {intervention.kind:<11} "
        f"{payload}  by {intervention.who or '?'}"
        + (f": {intervention.why}" if intervention.why else "")
    )


def steering_summary(store: TraceStore, campaign: dict[str, Any]) -> dict[str, Any]:
    """The ``steering`` block of ``coscope status``: what the interventions made of the spec."""
    from coscope.config import parse_spec

    try:
        settings = stored_settings(store, parse_spec(campaign))
    except ConfigError:
        return {}
    items = store.interventions()
    return {
        "paused": settings.paused,
        "prefect_pause": store.get_attr("prefect_pause", None),
        "policy": settings.policy["name"],
        "policy_params": settings.policy.get("params", {}),
        "scalarizer": settings.scalarizer["name"],
        "reward": settings.reward,
        "votes": len(settings.votes),
        "excluded_pixels": len(settings.excluded),
        "interventions": len(items),
        "rejected": sum(1 for i in items if REJECTED in i.payload),
        "inbox": len(Inbox(store.path).pending()),
    }
