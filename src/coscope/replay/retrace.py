"""Explainable retrace: the final model applied along the recorded path.

The final model is the surrogate the campaign ends with (final settings, every observation,
fitted as the campaign would). For each recorded decision ``k`` it is conditioned on the
observations known at ``k`` — the *final* hyperparameters (and, for DKL, the final feature
extractor: a global latent space known from the start), only the data of step ``k`` — and
gives the mean, std and acquisition maps (the acquisition policy in force at ``k`` when it
runs on the same surrogate kind, else the final one), the chosen point's rank among the
eligible pixels and the ``top_k`` runners-up. The trajectory is drawn in the learned feature
space: the DKL embedding when the surrogate is DKL, otherwise the first two principal
components of the structure patches (the same 9 x 9 patches a DKL would see).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coscope.agents.acquisition import believing, build_acquisition, evaluate, policy_names
from coscope.agents.base import ScheduledAgent
from coscope.agents.box_agent import BoxAgent
from coscope.agents.protocols import AgentAbilities, HasPolicy, Retraceable
from coscope.campaign.adopt import restrict
from coscope.errors import ConfigError
from coscope.models import DKLState, GPState, patch_features, predict
from coscope.replay.counterfactual import Counterfactual, Replayer
from coscope.report.step_progress import OnStep, no_progress
from coscope.spaces import CandidateTable, layout_features, points_of
from coscope.storage import TraceStore


@dataclass
class RetraceResult:
    """Per-step explanation maps and rows.

    Attributes:
        rows: Per decision: ``step``, chosen ``row``/``col``, ``policy`` (recorded), ``rank``
            of the chosen pixel under the final model's acquisition (1 = its best; 0 when
            there is no acquisition), ``score``, ``mean``, ``std`` at the chosen pixel,
            ``runners_up`` (list of ``[row, col]``), ``n_obs``.
        acquisition: ``(K, H, W)`` acquisition maps (NaN where not eligible or no model).
        mean: ``(K, H, W)`` posterior mean maps.
        std: ``(K, H, W)`` posterior std maps.
        embedding: ``(H*W, 2)`` coordinates of every pixel in the drawn feature space.
        space: Name of that space (``"DKL latent"``, ``"patch PCA"``).
        path: Recorded ``(row, col)`` of every decision, in order.
        grid_shape: ``(H, W)``.
        points: On a box: the recorded points, ``K x d`` in the box's units (None on a
            finite space); the maps are then empty and ``rank`` is among
            :data:`BOX_REFERENCE` quasi-random points of the box.
        dimensions: On a box: its dimension names.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    acquisition: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    std: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    embedding: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    space: str = ""
    path: list[tuple[int, int]] = field(default_factory=list)
    grid_shape: tuple[int, int] = (0, 0)
    points: np.ndarray | None = None
    dimensions: tuple[str, ...] = ()

    def summary(self) -> str:
        """A few lines for the terminal."""
        ranks = [r["rank"] for r in self.rows if r["rank"] > 0]
        top = np.mean([r == 1 for r in ranks]) if ranks else float("nan")
        return (
            f"retrace: {len(self.rows)} decisions; under the final model the chosen pixel was "
            f"its best in {top:.0%} of model-based steps (median rank "
            f"{np.median(ranks) if ranks else float('nan'):.0f}); feature space: {self.space}"
        )


def _conditioned(
    agent: Retraceable | ScheduledAgent,
    final_state: GPState | DKLState,
    steps: list[int],
    known: set[int],
) -> GPState | DKLState | None:
    """The final state restricted to training rows whose step is in ``known``, loaded."""
    idx = [i for i, s in enumerate(steps) if s in known]
    if not idx:
        return None
    state: GPState | DKLState
    if isinstance(final_state, DKLState):  # DKL: the final latent inputs
        state = replace(final_state, F=final_state.F[idx], y=final_state.y[idx])
    else:
        state = replace(final_state, X=final_state.X[idx], y=final_state.y[idx])
    agent.condition_on(state)
    return state


def _blank_row(decision: Any, n_obs: int) -> dict[str, Any]:
    """A decision's retrace row before the model fills in rank, score, mean and std."""
    return {
        "step": decision.step,
        "row": decision.location.row,
        "col": decision.location.col,
        "policy": decision.policy,
        "rank": 0,
        "score": float("nan"),
        "mean": float("nan"),
        "std": float("nan"),
        "runners_up": [],
        "n_obs": n_obs,
    }


def _feature_space(rp: Replayer, abilities: AgentAbilities) -> tuple[np.ndarray, str]:
    latent = abilities.embedding
    emb = latent.embedding() if latent is not None else None
    if emb is not None:
        if emb.shape[1] == 1:
            emb = np.hstack([emb, np.zeros_like(emb)])
        return emb[:, :2], "DKL latent"
    table = isinstance(rp.space, CandidateTable)  # no image: the table's own features
    feats = layout_features(rp.space) if table else patch_features(rp.sample.structure, 9)
    feats = feats - feats.mean(axis=0)
    _, _, vt = np.linalg.svd(feats, full_matrices=False)
    emb = feats @ vt[:2].T
    if emb.shape[1] == 1:
        emb = np.hstack([emb, np.zeros_like(emb)])
    return emb, "feature PCA" if table else "patch PCA"


def retrace(
    store_path: str | Path, *, top_k: int = 5, on_step: OnStep = no_progress
) -> RetraceResult:
    """Explain every recorded decision of the trace at ``store_path`` (read-only);
    ``on_step("retrace", done, total)`` after each decision."""
    store = TraceStore.open(store_path, mode="r")
    try:
        rp = Replayer(store)
    finally:
        store.close()
    what = Counterfactual()
    H, W = rp.sample.shape
    result = RetraceResult(path=[(d.location.row, d.location.col) for d in rp.decisions])
    result.grid_shape = (H, W)
    end = rp.decisions[-1].step + 1 if rp.decisions else 0
    final_settings = rp.settings_at(end, what)
    adopted = rp.adopt(final_settings, with_truth=False)
    if isinstance(adopted, BoxAgent):
        return _retrace_box(rp, adopted, end, result, on_step)
    abilities = rp.steered.abilities
    agent = abilities.retraceable
    if agent is None:  # a single-target agent (checked by adopt) without a grid surrogate
        name = type(adopted).__name__
        raise ConfigError(
            f"retrace needs an agent whose surrogate can be conditioned on earlier data; "
            f"{name} cannot be: use replay instead."
        )
    rp.ingest(rp.measurements)
    final = agent.final_surrogate(end)
    final_state, steps = final if final is not None else (None, [])
    result.embedding, result.space = _feature_space(rp, abilities)
    scorer = abilities.policy
    final_policy = (
        (scorer.policy_name, dict(scorer.policy_params)) if scorer is not None else ("", {})
    )
    K = len(rp.decisions)
    maps = {k: np.full((K, H, W), np.nan) for k in ("acquisition", "mean", "std")}
    for k, decision in enumerate(rp.decisions):
        seen = {m.step for m in rp.seen_before(decision.step)}
        flat = decision.location.flat(W)
        row = _blank_row(decision, len(seen & set(steps)))
        state = _conditioned(agent, final_state, steps, seen) if final_state is not None else None
        if state is not None:
            mean, std = agent.predict_candidates()
            maps["mean"][k], maps["std"][k] = mean.reshape(H, W), std.reshape(H, W)
            row["mean"], row["std"] = float(mean[flat]), float(std[flat])
            if scorer is not None:
                at_step = rp.settings_at(decision.step, what)
                restrict(abilities.steerable, at_step)  # exclusions in force at this step
                _set_policy(scorer, at_step.policy, final_policy)
                pending = [d.location.flat(W) for d in rp.decisions[:k] if d.step not in seen]
                scores = np.asarray(scorer.scores(pending), dtype=np.float64)
                eligible = np.ones(H * W, dtype=bool)
                eligible[[rp.decisions[j].location.flat(W) for j in range(k)]] = False
                eligible &= ~(agent.blocked | agent.outside)  # steering exclusions, off the space
                eligible[flat] = True
                scores = np.where(eligible & np.isfinite(scores), scores, np.nan)
                maps["acquisition"][k] = scores.reshape(H, W)
                row["score"] = float(scores[flat])
                order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
                row["rank"] = int(np.flatnonzero(order == flat)[0]) + 1
                ups = [int(i) for i in order if i != flat and eligible[i]][:top_k]
                row["runners_up"] = [[i // W, i % W] for i in ups]
        result.rows.append(row)
        on_step("retrace", k + 1, K)
    if scorer is not None:
        _set_policy(scorer, None, final_policy)
    result.acquisition, result.mean, result.std = maps["acquisition"], maps["mean"], maps["std"]
    return result


BOX_REFERENCE = 256
"""Scrambled Sobol points of the box a chosen point is ranked among (retrace on a box)."""


def _retrace_box(
    rp: Replayer, agent: BoxAgent, end: int, result: RetraceResult, on_step: OnStep
) -> RetraceResult:
    """Retrace on a box: per decision, the final model's mean, std and acquisition at the
    recorded point (the final hyperparameters, the data known then, pending points
    believed), and its rank among :data:`BOX_REFERENCE` Sobol points of the box."""
    box = agent.box
    rp.ingest(rp.measurements)
    final = agent.final_surrogate(end)
    final_state, steps = final if final is not None else (None, [])
    _, points = points_of(box, rp.decisions)
    unit = box.to_unit(points)
    sobol = torch.quasirandom.SobolEngine(box.dim, scramble=True, seed=rp.spec.seed)
    reference = sobol.draw(BOX_REFERENCE, dtype=torch.float64)
    scored = agent.policy_name in policy_names()
    for k, decision in enumerate(rp.decisions):
        seen = {m.step for m in rp.seen_before(decision.step)}
        row = _blank_row(decision, len(seen & set(steps))) | {"x": points[k].tolist()}
        state = _conditioned(agent, final_state, steps, seen) if final_state is not None else None
        if state is not None:
            mean, std = predict(agent.surrogate, unit[k : k + 1])
            row["mean"], row["std"] = float(mean[0]), float(std[0])
            if scored:
                pending = [j for j in range(k) if rp.decisions[j].step not in seen]
                model = believing(agent.surrogate, unit[pending])
                acqf = build_acquisition(
                    agent.policy_name,
                    model,
                    best_f=float(state.y.max()),
                    params=agent.policy_params,
                )
                here = evaluate(acqf, torch.as_tensor(unit[k : k + 1]))
                others = evaluate(acqf, reference)
                row["score"] = float(here[0])
                row["rank"] = 1 + int((others > here[0]).sum())
        result.rows.append(row)
        on_step("retrace", k + 1, len(rp.decisions))
    result.points, result.dimensions = points, box.names
    result.embedding = unit[:, :2] if box.dim >= 2 else np.hstack([unit, np.zeros_like(unit)])
    result.space = "box" if box.dim <= 2 else f"box (first 2 of {box.dim} dimensions)"
    return result


def _set_policy(agent: HasPolicy, policy: dict[str, Any] | None, final: tuple[str, dict]) -> None:
    """Use the step's acquisition policy when it runs on this surrogate kind, else the final."""
    name, params = final
    if policy is not None and policy.get("model", "gp") == agent.model_kind:
        if policy["name"] in policy_names() or policy["name"] == "thompson":
            name, params = policy["name"], dict(policy.get("params", {}))
    agent.policy_name, agent.policy_params = name, params
