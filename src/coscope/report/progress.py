"""The live progress display of ``coscope demo|run|resume``, read from the trace.

The display polls the store (never the loop), so it shows exactly what is durable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coscope.config import CampaignSpec
from coscope.report.status import campaign_status


class CampaignProgress:
    """A rich progress bar on a terminal; elsewhere (``| tee``, a log file) one plain line
    per new measurement. Measurements, cost spent of budget, best reward so far.

    Args:
        store_path: The campaign's trace.
        spec: Its spec (for the budget).
        enabled: ``False`` for ``--quiet``: no bar, no lines, summary still printed.
        stream: Where plain lines go (default stderr).
    """

    def __init__(
        self,
        store_path: Path,
        spec: CampaignSpec,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self._path = store_path
        self._spec = spec
        self._console = Console(stderr=True)
        self._stream = stream or sys.stderr
        self._plain = enabled and not self._stream.isatty()
        self._shown = -1  # measurements in the last plain line
        self._enabled = enabled and not self._plain
        budget = spec.budget
        self._total = budget.max_measurements or None
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cost {task.fields[cost]}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            console=self._console,
            disable=not self._enabled,
        )
        self._task = self._progress.add_task(spec.name, total=self._total, cost="0", best="–")

    def __enter__(self) -> CampaignProgress:
        self._progress.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def phase(self, what: str) -> None:
        """Say what the campaign is doing while it starts (one line; nothing when quiet)."""
        line = f"{self._spec.name}: {what}"
        if self._enabled:  # above the live bar
            self._progress.console.print(line, markup=False, highlight=False)
        elif self._plain:
            print(line, file=self._stream, flush=True)

    def refresh(self) -> None:
        """Read the trace and update the bar (or print a line when a measurement arrived)."""
        if not (self._enabled or self._plain):
            return
        status = campaign_status(self._path)
        max_cost = self._spec.budget.max_cost
        cost = f"{status['cost_spent']:g}" + (f"/{max_cost:g}" if max_cost else "")
        best = f"{status['best']['value']:.4g}" if status["best"] else "–"
        done = status["measurements"]["total"]
        if self._plain:
            if done != self._shown:
                self._shown = done
                of = f"/{self._total}" if self._total else ""
                print(
                    f"{self._spec.name}: {done}{of} measurements, cost {cost}, best {best}",
                    file=self._stream,
                    flush=True,
                )
            return
        self._progress.update(self._task, completed=done, cost=cost, best=best)

    def print_summary(self, summary: dict[str, Any]) -> None:
        """A short table of how the campaign ended (stdout)."""
        table = Table(title=f"campaign {self._spec.name}: {summary['status']}", show_header=False)
        table.add_row("why", str(summary["reason"]))
        table.add_row("measurements", str(summary["measurements"]))
        table.add_row("cost spent", f"{summary['cost_spent']:g}")
        if summary.get("best_so_far") is not None:
            table.add_row(f"best {self._spec.scalarizer.name}", f"{summary['best_so_far']:.4g}")
        if summary.get("rmse") is not None:
            table.add_row("map RMSE vs truth", f"{summary['rmse']:.4g}")
        table.add_row("report", summary["report"])
        table.add_row("trace", summary["store"])
        table.add_row("mlflow run", str(summary.get("mlflow_run_id")))
        Console().print(table)
