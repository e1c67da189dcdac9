"""Study results as tables: the long CSV, curves stacked per group, the Markdown summary."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coscope.studies.metrics import METRICS
from coscope.studies.runs import ROW_HEAD

CHECKPOINT_FRACTIONS = (0.02, 0.05, 0.10)


def write_curves(results: Sequence[dict[str, Any]], path: Path, key_names: Sequence[str]) -> int:
    """Write one row per (run keys, step) to ``path``; empty cells where unknown. Returns rows."""
    columns = [*key_names, *ROW_HEAD, *METRICS]
    n = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for result in results:
            for row in result["rows"]:
                merged = {**result["keys"], **row}
                writer.writerow(["" if merged.get(c) is None else merged[c] for c in columns])
                n += 1
    return n


def read_curves(path: Path, key_names: Sequence[str]) -> list[dict[str, Any]]:
    """Results (``keys`` and ``rows`` per run, in file order) back from a ``curves.csv``."""
    runs: dict[tuple[str, ...], dict[str, Any]] = {}
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            ident = tuple(line[k] for k in key_names)
            run = runs.setdefault(
                ident, {"keys": dict(zip(key_names, ident, strict=True)), "rows": []}
            )
            row: dict[str, Any] = {k: int(line[k]) for k in ("step", "n_measurements")}
            for k in ("cost_spent", *METRICS):
                row[k] = float(line[k]) if line[k] != "" else None
            run["rows"].append(row)
    return list(runs.values())


def stack(
    results: Sequence[dict[str, Any]], group_key: str, metric: str, length: int
) -> dict[str, np.ndarray]:
    """Per group, the runs' ``metric`` as ``n_runs x length`` (index i = after i+1 measurements).

    Missing values (metric unknown, run shorter than ``length``) are NaN.
    """
    out: dict[str, list[np.ndarray]] = {}
    for result in results:
        curve = np.full(length, np.nan)
        for row in result["rows"]:
            k = int(row["n_measurements"]) - 1
            value = row.get(metric)
            if 0 <= k < length and value is not None:
                curve[k] = float(value)
        out.setdefault(str(result["keys"][group_key]), []).append(curve)
    return {group: np.vstack(curves) for group, curves in out.items()}


def checkpoints(n_pixels: int, budget: int) -> list[tuple[str, int]]:
    """``(label, n)`` at 2 %, 5 %, 10 % of the grid (those within the budget) and the end."""
    out = []
    for fraction in CHECKPOINT_FRACTIONS:
        n = max(1, math.ceil(fraction * n_pixels))
        if n < budget:
            out.append((f"{fraction:.0%} (n={n})", n))
    out.append((f"end (n={budget})", budget))
    return out


def _cell(values: np.ndarray, spread: bool = False) -> str:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "–"
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    text = f"{float(np.mean(values)):.3g} ± {std:.2g}"
    if spread:
        text += f" [{float(np.min(values)):.3g}, {float(np.max(values)):.3g}]"
    return text


def summary_markdown(
    results: Sequence[dict[str, Any]],
    *,
    group_key: str,
    n_pixels: int,
    budget: int,
    title: str,
    notes: Sequence[str] = (),
    spread: bool = False,
) -> str:
    """Markdown: per metric a table of mean ± std (over runs) per group at the checkpoints.

    With ``spread`` each cell also shows ``[min, max]`` over the runs.
    """
    points = checkpoints(n_pixels, budget)
    lines = [f"# {title}", "", *notes, ""] if notes else [f"# {title}", ""]
    groups = list(dict.fromkeys(str(r["keys"][group_key]) for r in results))
    for metric in METRICS:
        stacked = stack(results, group_key, metric, budget)
        if all(not np.isfinite(a).any() for a in stacked.values()):
            continue
        lines += [
            f"## {metric}",
            "",
            "| " + " | ".join([group_key] + [p[0] for p in points]) + " |",
        ]
        lines.append("|" + "---|" * (len(points) + 1))
        for group in groups:
            cells = [_cell(stacked[group][:, n - 1], spread) for _, n in points]
            lines.append("| " + " | ".join([group, *cells]) + " |")
        lines.append("")
    seconds = [r["seconds"] for r in results if "seconds" in r]
    if seconds:
        lines.append(
            f"{len(results)} campaigns, {np.mean(seconds):.1f} s each on average "
            f"(max {np.max(seconds):.1f} s)."
        )
    return "\n".join(lines) + "\n"
