"""``coscope report``: one offline HTML page (inline CSS, PNGs beside it, no JS, no CDN).

Sections: the campaign (final maps with the path, reward along the path), its interventions
on a timeline and as a table (what, when, who, why, applied or rejected), the decision
policy per step, and — when asked — the counterfactual comparison (learning curves of
replays with other scalarizers along the recorded path, with their divergence steps) and the
explainable retrace panels. Everything is computed from the trace, opened read-only.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coscope.campaign.steering import REJECTED
from coscope.replay.counterfactual import Counterfactual, replay
from coscope.replay.output import _figure, plot_curves, write_retrace
from coscope.replay.retrace import retrace
from coscope.report.replayed import rebuilt, write_replayed_maps
from coscope.report.step_progress import OnStep, no_progress
from coscope.storage import TraceStore

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px}
th{background:#f3f3f3}.rej{color:#999}img{max-width:100%}code{font-size:.85em}
"""


def _timeline(store: TraceStore, rewards: dict[int, float], path: Path) -> None:
    """Reward per step (under the final settings) with every intervention where it took effect."""
    plt, fig = _figure(9.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    steps = sorted(rewards)
    ax.plot(steps, [rewards[s] for s in steps], ".-", c="0.3", lw=0.8, label="reward")
    ax.set_xlabel("decision step")
    ax.set_ylabel("reward under the final settings")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    kinds: dict[str, str] = {}
    low, high = ax.get_ylim()
    for k, item in enumerate(store.interventions()):
        colour = kinds.setdefault(item.kind, colours[len(kinds) % len(colours)])
        rejected = REJECTED in item.payload
        ax.axvline(item.step - 0.5, color=colour, ls=":" if rejected else "-", lw=1.2)
        ax.text(
            item.step - 0.4,
            high - (k % 6 + 1) * (high - low) / 8,
            item.kind + (" (rejected)" if rejected else ""),
            color=colour,
            fontsize=7,
        )
    ax.set_title("interventions on the timeline (dotted: rejected)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _intervention_rows(store: TraceStore) -> str:
    rows = []
    for item in store.interventions():
        payload = dict(item.payload)
        reason = payload.pop(REJECTED, None)
        when = dt.datetime.fromtimestamp(item.t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = f"rejected: {reason}" if reason else "applied"
        cells = [str(item.step), when, item.kind, json.dumps(payload)[:300], item.who, item.why]
        cls = ' class="rej"' if reason else ""
        rows.append(
            f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in [*cells, status]) + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("step", "applied at (UTC)", "kind", "payload", "who", "why", "")
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>" if rows else "<p>None.</p>"


def write_html_report(
    store_path: str | Path,
    out: Path,
    *,
    counterfactual: Sequence[str] = (),
    with_retrace: bool = True,
    on_step: OnStep = no_progress,
) -> Path:
    """Write ``index.html`` and its PNGs into ``out``; returns the page.

    Args:
        store_path: The campaign's trace (opened read-only).
        out: Report folder (created).
        counterfactual: Scalarizers to replay along the recorded path for the comparison.
        with_retrace: Also draw the explainable retrace panels and trajectory.
        on_step: Told ``(job, done, total)`` after each decision of each replay and of the
            retrace (:mod:`coscope.report.step_progress`).
    """
    out.mkdir(parents=True, exist_ok=True)
    store = TraceStore.open(store_path, mode="r")
    try:
        rp = rebuilt(store)
        agent = rp.steered.agent
        spec = rp.steered.spec
        title = f"{spec.name}: final settings {spec.policy.name} on {spec.scalarizer.name}"
        write_replayed_maps(out, rp, title, [d.location for d in rp.decisions])
        recorded = replay(store.path, metrics=False, on_step=on_step)
        rewards = {o.step: o.value for o in agent.observations}
        _timeline(store, rewards, out / "timeline.png")
        sections = [
            "<h2>Campaign</h2>",
            f"<p>{len(rp.decisions)} decisions, {len(rp.measurements)} measurements, cost "
            f"{sum(m.cost for m in rp.measurements):g}; final policy "
            f"<code>{html.escape(json.dumps(spec.policy.model_dump(mode='json')))}</code>, "
            f"scalarizer <code>{html.escape(json.dumps(spec.scalarizer.model_dump()))}</code>"
            f"{', reward: similarity to the vote target' if rp.steered.reward else ''}.</p>",
            '<img src="maps.png" alt="maps">',
            "<h2>Interventions</h2>",
            '<img src="timeline.png" alt="timeline">',
            _intervention_rows(store),
            "<h2>Replay with the recorded settings</h2>",
            f"<p>{html.escape(recorded.summary())}</p>",
        ]
        if counterfactual:
            sections += _counterfactual_section(store.path, counterfactual, out, on_step)
        if with_retrace and rp.decisions:
            result = retrace(store.path, on_step=on_step)
            write_retrace(result, out / "retrace")
            sections += [
                "<h2>Explainable retrace (final model along the path)</h2>",
                f"<p>{html.escape(result.summary())}</p>",
                '<img src="retrace/steps.png" alt="retrace steps">',
                '<img src="retrace/trajectory.png" alt="trajectory">',
            ]
    finally:
        store.close()
    page = out / "index.html"
    title = html.escape(f"coscope report: {spec.name}")
    page.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>"
    )
    return page


def _counterfactual_section(
    store_path: Path, scalarizers: Sequence[str], out: Path, on_step: OnStep
) -> list:
    results = [replay(store_path, on_step=on_step)]
    results += [
        replay(store_path, Counterfactual(scalarizer=s), on_step=on_step) for s in scalarizers
    ]
    plot_curves(results, out / "counterfactual.png")
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in (
                r.label,
                r.first_divergence if r.first_divergence is not None else "none",
                f"{r.agreement:.0%}",
                f"{r.final.get('nrmse', np.nan):.3f}",
            )
        )
        + "</tr>"
        for r in results
    )
    head = "<tr><th>replay</th><th>first divergence</th><th>agree</th><th>final nrmse</th></tr>"
    return [
        "<h2>Counterfactual comparison</h2>",
        "<p>Each replay follows the recorded path with another scalarizer; nrmse is the "
        "model's error against ground truth under that scalarizer, divided by its spread.</p>",
        '<img src="counterfactual.png" alt="counterfactual curves">',
        f"<table>{head}{rows}</table>",
    ]
