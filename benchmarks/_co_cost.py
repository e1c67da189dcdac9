"""Part (a) of the co-orchestration figures: cost to a target map error, as table rows.

Each result is one campaign: ``cost`` (cumulative cost after every measurement), ``rmse`` (map
RMSE after it, cm^-1), ``truth_std`` (std of the true map), ``boundary_agreement`` (or None).
"""

from __future__ import annotations

import _report


def cost_to(result: dict, target: float) -> float | None:
    """Cost spent when RMSE / std(true map) first reaches ``target`` (None: not in budget)."""
    for cost, rmse in zip(result["cost"], result["rmse"], strict=True):
        if rmse == rmse and rmse <= target * result["truth_std"]:
            return cost
    return None


def settled_at(result: dict, target: float) -> float | None:
    """Cost from which RMSE / std(true map) stays at or below ``target`` to the end (None:
    not at the end of the budget)."""
    settled = None
    for cost, rmse in zip(result["cost"], result["rmse"], strict=True):
        ok = rmse == rmse and rmse <= target * result["truth_std"]
        settled = (settled if settled is not None else cost) if ok else None
    return settled


def rmse_at(result: dict, cost: float) -> float:
    """RMSE after the last measurement whose cumulative cost is <= ``cost``."""
    value = float("nan")
    for c, r in zip(result["cost"], result["rmse"], strict=True):
        if c <= cost + 1e-9:
            value = r
    return value


def _ratio_cell(ratios: list[float], reached: list[float], base: list, max_cost: float) -> str:
    """Median ratio (over seeds where both got there), or a lower bound when the
    single-modality GP never got there."""
    if ratios:
        return f"{_report.median(ratios):.2f}× ({len(ratios)})"
    if reached and not any(b is not None for b in base):
        bound = max_cost / _report.median(reached)
        return f"> {bound:.2f}× (single: not within cost {max_cost:g})"
    return "—"


def cost_rows(
    by: dict[str, list[dict]], targets, baseline: str, baseline_boundary: str, max_cost: float
) -> list[list[str]]:
    """Per target and strategy: reached, median cost, IQR, ratios to both single-modality GPs,
    median cost from which the RMSE stays below the target."""
    rows = []
    for target in targets:
        base = [cost_to(r, target) for r in by[baseline]]
        base_b = [cost_to(r, target) for r in by[baseline_boundary]]
        for label, runs in by.items():
            costs = [cost_to(r, target) for r in runs]
            reached = [c for c in costs if c is not None]
            settled = [c for c in (settled_at(r, target) for r in runs) if c is not None]
            cells = []
            for ref in (base, base_b):
                ratios = [b / c for b, c in zip(ref, costs, strict=True) if b and c]
                cells.append(_ratio_cell(ratios, reached, ref, max_cost))
            rows.append(
                [
                    f"{target:g} × std",
                    label,
                    f"{len(reached)}/{len(runs)}",
                    f"{_report.median(reached):.0f}" if reached else "—",
                    f"{_report.percentile(reached, 25):.0f}–{_report.percentile(reached, 75):.0f}"
                    if reached
                    else "—",
                    *cells,
                    f"{_report.median(settled):.0f} ({len(settled)}/{len(runs)})"
                    if settled
                    else f"— (0/{len(runs)})",
                ]
            )
    return rows


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def boundary_line(by: dict[str, list[dict]]) -> str:
    """Median fraction of members on the correct side of the learned boundary."""
    parts = []
    for label, runs in by.items():
        agree = [r["boundary_agreement"] for r in runs if r.get("boundary_agreement") is not None]
        if agree:
            parts.append(
                f"{label}: median {100 * _report.median(agree):.0f} % of members on the correct "
                f"side (range {100 * min(agree):.0f}–{100 * max(agree):.0f} %)"
            )
    return "; ".join(parts) + "." if parts else "No run ended with a boundary kernel."
