"""When a co-orchestrating agent refits, and fitting off the decision path (background).

Schedule: data sizes ``s_0 = max(n_initial, 2)``, ``s_{k+1} = max(s_k + refit_every,
ceil(refit_growth * s_k))``. It depends on the data size only, so a resumed campaign fits the
same prefixes (first ``s_k`` observations in step order) with the same seeds.

Background fitting (``background_fit``), so that no instrument waits on the model: at data size
``n`` with schedule points ``s_0 < … < s_k <= n`` the agent decides with the fit of ``s_{k-1}``
(lag one point; while ``k = 0`` it continues the initial design), and starts the fit of ``s_k``
in a background thread as soon as the data reaches ``s_k``. That fit is needed only once the
data reaches ``s_{k+1}``, by when it is normally done (the gap grows with ``refit_growth``); if
not, the agent waits for it. Decisions therefore stay a deterministic function of (seed, data)
— the same as with instantaneous fits lagged by one schedule point — while fits overlap with
measurements. Between fits every decision conditions on all data with the hyperparameters of
the fit in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def schedule(n: int, n_initial: int, refit_every: int, growth: float) -> list[int]:
    """Schedule points ``<= n`` in increasing order (empty before ``s_0``)."""
    points: list[int] = []
    size = max(int(n_initial), 2)
    while size <= n:
        points.append(size)
        size = max(size + int(refit_every), int(math.ceil(growth * size - 1e-9)))
    return points


class BackgroundFits:
    """Fits by data size, computed in one background thread; results kept by size.

    Args:
        fit: ``fit(size) -> state``: fits the first ``size`` observations (pure function of
            the data prefix and its seed).
    """

    def __init__(self, fit: Callable[[int], Any]) -> None:
        self._fit = fit
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[int, Future] = {}

    def start(self, size: int) -> None:
        """Begin fitting ``size`` in the background unless already begun."""
        if size not in self._futures:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coscope-fit")
            self._futures[size] = self._pool.submit(self._fit, size)

    def result(self, size: int) -> Any:
        """The fit of ``size``: waits for a running one, fits now if never started."""
        if size not in self._futures:
            future: Future = Future()
            future.set_result(self._fit(size))
            self._futures[size] = future
        return self._futures[size].result()

    def close(self) -> None:
        """Stop the thread (after running fits end)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
