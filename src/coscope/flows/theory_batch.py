"""The ``theory-batch`` flow: a batch of simulations and a recalibration from the latest trace.

Facilities schedule theory runs (they wait for a cluster). This flow, run on a schedule by
``coscope serve``, reads the experimental trace (read-only: the campaign may be running and
stays its single writer), rebuilds the co-navigation agent from every stored measurement and
decision, asks it for ``n_simulations`` simulations at once (each proposed with the earlier
ones pending), runs them concurrently as Prefect tasks, recalibrates, and writes the batch to
``<run_dir>/theory_batches/batch-NNNN/``:

* ``simulations.npz`` — the sidecar (:func:`~coscope.campaign.theory_intake.write_sidecar`):
  locations ``(n, 2)``, loops ``(n, V)``, params (JSON), cost, timing, score, and for reading
  by eye theta ``(n, k)`` (calibrated names) and fidelity ``(n,)``;
* ``summary.json`` — theta* and its standard deviation before and after the batch;
* ``twin/`` — the recalibrated digital twin (also logged to the campaign's MLflow experiment
  as a ``theory-batch`` run and registered as a new version of ``<campaign>-twin``).

Then the batch goes into the campaign's trace: one ``theory_batch`` request is posted to the
campaign's inbox pointing at the sidecar (with its sha256). A running campaign's loop records
it between steps; if no campaign holds the trace's writer lock, the flow records it itself
(:func:`~coscope.campaign.theory_intake.absorb_if_idle`). See ``docs/co_navigation.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from coscope.agents.protocols import Ask
from coscope.campaign.inbox import Inbox
from coscope.campaign.theory_intake import absorb_if_idle
from coscope.campaign.theory_sidecar import THEORY_BATCH, sha256_of, write_sidecar
from coscope.errors import ConfigError
from coscope.instruments.pricing import pricing_of
from coscope.types import MeasurementRequest, Proposal


@task(name="simulate", cache_policy=NO_CACHE, persist_result=False)
def simulate_task(instrument: Any, request: MeasurementRequest) -> Any:
    """One simulation (the instrument object stays in this process: threads, no pickling)."""
    return instrument.measure(request)


def load_agent(store_path: str | Path, fitter: Any = None) -> tuple[Any, Any, Any, int]:
    """``(spec, sample, agent, n_decisions)`` rebuilt from the trace at ``store_path``
    (read-only); ConfigError unless its policy co-navigates. ``fitter`` (``Executor.fit``'s
    signature) replaces the agent's in-process fits."""
    from coscope.agents.protocols import abilities_of
    from coscope.config import parse_spec
    from coscope.infra.compose import agent_from_spec, effective_campaign, sample_from_spec
    from coscope.storage import TraceStore

    store = TraceStore.open(store_path, mode="r")
    try:
        spec = parse_spec(effective_campaign(store))
        sample = sample_from_spec(spec.sample, spec.seed)
        agent = agent_from_spec(spec, sample)
        abilities = abilities_of(agent)
        remembers = abilities.remembers_params
        if abilities.digital_twin is None or remembers is None:
            raise ConfigError(
                f"the campaign at '{store_path}' has policy {spec.policy.name!r}: a theory batch "
                "needs policy 'conavigate' with a theory instrument."
            )
        if fitter is not None:
            agent.fitter = fitter
        for decision in store.decisions():
            remembers.remember_params(decision.step, decision.params)
        agent.ingest_measurements(sorted(store.measurements(), key=lambda m: m.step))
        n_decisions = store.counts()["decisions"]
    finally:
        store.close()
    return spec, sample, agent, n_decisions


def _one_by_one(instrument: Any, requests: list[MeasurementRequest]) -> list[Any]:
    return [instrument.measure(r) for r in requests]


def _as_prefect_tasks(instrument: Any, requests: list[MeasurementRequest]) -> list[Any]:
    futures = [simulate_task.submit(instrument, r) for r in requests]
    return [f.result() for f in futures]


def run_theory_batch(
    store_path: str,
    n_simulations: int = 8,
    register: bool = True,
    run_many: Callable[[Any, list[MeasurementRequest]], list[Any]] = _one_by_one,
    post: bool = True,
    fitter: Any = None,
) -> dict[str, Any]:
    """The work of :func:`theory_batch_flow` (plain Python; see the module docstring).

    Args:
        store_path: The campaign's trace (read only).
        n_simulations: Simulations in the batch.
        register: Log the recalibrated twin to MLflow and register it.
        run_many: Runs the simulations (one by one here; concurrent Prefect tasks in the flow).
        post: Post the batch to the campaign's inbox (and record it if no campaign runs).
        fitter: Runs the surrogate fits (in-process by default; Prefect ``fit`` tasks in the
            flow).
    """
    from coscope.infra.compose import instruments_from_spec
    from coscope.infra.tracking import MlflowTracker, local_artifact_root, run_tags
    from coscope.twin.report import finish_twin

    if n_simulations < 1:
        raise ConfigError(f"n_simulations={n_simulations} is invalid: ask for at least 1.")
    spec, sample, agent, n_decisions = load_agent(store_path, fitter)
    inst_spec = next(i for i in spec.instruments if i.kind.startswith("theory_"))
    instrument = instruments_from_spec(
        spec.model_copy(update={"instruments": [inst_spec], "time_scale": 0.0}), sample
    )[inst_spec.name]
    out_root = spec.resolved_run_dir() / "theory_batches"
    batch = len(list(out_root.glob("batch-*"))) if out_root.exists() else 0
    folder = out_root / f"batch-{batch:04d}"
    before = agent.digital_twin()
    pending: list[Proposal] = []
    first_step = 1_000_000 * (batch + 1) + n_decisions  # never a campaign step
    for i in range(n_simulations):
        ask = Ask(
            step=first_step + i,
            instrument=inst_spec.name,
            offered=(agent.theory_modality,),
            pending=tuple(pending),
            price=pricing_of(instrument).quote,
        )
        proposal = agent.propose(ask)
        if proposal is None:
            break
        pending.append(proposal)
    results = run_many(
        instrument, [MeasurementRequest.from_proposal(p, spec.seed) for p in pending]
    )
    agent.ingest_measurements(results)
    twin = agent.digital_twin()
    folder.mkdir(parents=True, exist_ok=True)
    names = agent.space.names
    sidecar = write_sidecar(
        folder,
        pending,
        results,
        theta=np.array([[p.params["theta"][n] for n in names] for p in pending]),
        fidelity=np.array([p.params.get("fidelity", 0) for p in pending]),
    )
    summary: dict[str, Any] = {
        "store": str(store_path),
        "batch": batch,
        "n_simulations": len(results),
        "n_experiments": len(agent.experiments),
        "theta_names": list(names),
        "theta_before": None if before is None else before.theta_mean.tolist(),
        "theta_after": None if twin is None else twin.theta_mean.tolist(),
        "theta_std_after": None if twin is None else twin.theta_std.tolist(),
        "batch_cost": float(sum(m.cost for m in results)),
    }
    if twin is not None and not register:
        twin.save(folder / "twin" / "artefact")
    elif twin is not None:
        uri = spec.resolved_tracking_uri()
        tracker = MlflowTracker(
            uri,
            spec.name,
            local_artifact_root(uri, spec.resolved_run_dir()),
            tags=run_tags(spec.name, spec.resolved_store()),
        )
        tracker.start({"name": f"{spec.name}-theory-batch-{batch:04d}"})
        summary["twin"] = finish_twin(agent, tracker, folder, spec.name, batch)
        tracker.finish("finished")
    if post and results:
        payload = {
            "batch": batch,
            "file": str(sidecar.resolve()),
            "sha256": sha256_of(sidecar),
            "n": len(results),
            "instrument": inst_spec.name,
            "modality": agent.theory_modality,
        }
        why = f"theory batch {batch}: {len(results)} simulations"
        summary["request"] = payload  # re-post it with Inbox(store).post if a crash lost it
        summary["posted"] = str(Inbox(store_path).post(THEORY_BATCH, payload, why=why, who=_who()))
        summary["recorded_steps"] = absorb_if_idle(store_path)  # None: the running loop will
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["folder"] = str(folder)
    return summary


def _who() -> str:
    """The Prefect flow run posting the batch, or the user outside a flow run."""
    import getpass

    from prefect.runtime import flow_run

    name, run_id = flow_run.get_name(), flow_run.get_id()
    if run_id:
        return f"theory-batch flow run {name} ({run_id})"
    return f"theory-batch ({getpass.getuser()})"


@flow(name="theory-batch", persist_result=False)
def theory_batch_flow(
    store_path: str, n_simulations: int = 8, register_twin: bool = True
) -> dict[str, Any]:
    """Prefect flow around :func:`run_theory_batch` (scheduled by ``coscope serve``)."""
    return run_theory_batch(
        store_path, n_simulations, register_twin, _as_prefect_tasks, fitter=_fit_as_prefect_task
    )


def _fit_as_prefect_task(kind, X, y, seed, iterations, options=None) -> Any:
    """A surrogate fit as the ``fit`` Prefect task of the flow (visible in the UI)."""
    from coscope.tasks.fit import fit_task

    return fit_task.submit(kind, X, y, seed, iterations, options).result()
