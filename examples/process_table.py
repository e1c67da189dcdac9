"""Write a table of candidate film recipes (CSV) simulated with coscope's own physics.

Each row is one recipe of a doped ferroelectric film: three dopant fractions, anneal
temperature and time, thickness and substrate misfit strain (7 features). Its targets are
the area and the coercive voltage of the film's hysteresis loop, simulated with the same
Landau-Khalatnikov loops as the synthetic film (:func:`coscope.instruments.physics.
hysteresis_loops`) and scalarized with coscope's ``loop_area`` and ``coercive_field``.

The law (noise-free; the instrument adds noise): saturation polarisation
``P_s = 0.1 + exp(-((a - 0.25) / 0.12)^2 - ((b - 0.05) / 0.1)^2) * crystallinity * (1 - 0.6 c)
* (1 + 0.25 tanh(strain / 0.5))`` with crystallinity
``sigmoid((T - 520 - 40 log10 t) / 25) * exp(-((T - 680) / 140)^2)``, and coercive voltage
``E_c = 0.8 + 2 c + 120 / thickness``. The loop area (≈ 4 P_s E_c once the 8.5 V sweep
saturates the loop) therefore has one interior optimum near ``a = 0.25, b = 0``, ``c`` in
the middle, ``T ≈ 650-700 °C``, thin films. The table is random in the feature box; its
best rows are the known optimum of a campaign.

Usage::

    python examples/process_table.py runs/process_table.csv [--rows 400] [--seed 0]
    coscope dataset import runs/process_table.csv --format table --features \\
        dopant_a,dopant_b,dopant_c,anneal_temp_c,anneal_time_min,thickness_nm,strain_pct \\
        --targets loop_area,coercive_field --out runs/datasets/process_table.zarr
    coscope run examples/process_table.yaml
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from coscope.instruments import physics
from coscope.scalarizers import scalarize

FEATURES = {
    "dopant_a": (0.0, 0.5),
    "dopant_b": (0.0, 0.3),
    "dopant_c": (0.0, 0.4),
    "anneal_temp_c": (450.0, 850.0),
    "anneal_time_min": (1.0, 60.0),
    "thickness_nm": (30.0, 200.0),
    "strain_pct": (-1.0, 1.0),
}
"""Feature columns and the box they are drawn from (uniform)."""
TARGETS = ("loop_area", "coercive_field")


def recipe_law(x: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(E_c, P_s)`` of each recipe (V, units of saturation), arrays ``(n,)``."""
    temp, time = x["anneal_temp_c"], x["anneal_time_min"]
    crystal = 1.0 / (1.0 + np.exp(-(temp - 520.0 - 40.0 * np.log10(time)) / 25.0))
    crystal *= np.exp(-(((temp - 680.0) / 140.0) ** 2))
    dopants = np.exp(-(((x["dopant_a"] - 0.25) / 0.12) ** 2) - ((x["dopant_b"] - 0.05) / 0.1) ** 2)
    strain = 1.0 + 0.25 * np.tanh(x["strain_pct"] / 0.5)
    ps = 0.1 + dopants * crystal * (1.0 - 0.6 * x["dopant_c"]) * strain
    ec = 0.8 + 2.0 * x["dopant_c"] + 120.0 / x["thickness_nm"]
    return ec, ps


def simulate_table(rows: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``(header, values)``: ``rows`` random recipes, ``rows x (7 + 2)`` float64."""
    rng = np.random.default_rng(seed)
    x = {k: rng.uniform(lo, hi, size=rows) for k, (lo, hi) in FEATURES.items()}
    ec, ps = recipe_law(x)
    voltage = physics.triangle_sweep(64, 8.5)
    alpha, beta = physics.landau_coefficients(ec, ps)
    loops = physics.hysteresis_loops(voltage, alpha, beta, 1.0, 0.0, n_sub=12)
    targets = np.array(
        [[scalarize(name, loop, voltage) for name in TARGETS] for loop in loops], dtype=np.float64
    )
    values = np.column_stack([*x.values(), targets])
    return [*FEATURES, *TARGETS], values


def write_csv(path: str | Path, rows: int = 400, seed: int = 0) -> Path:
    """Write the table to ``path`` (parents created); returns ``path``."""
    header, values = simulate_table(rows, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([f"{v:.6g}" for v in row] for row in values)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="CSV file to write")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_csv(args.out, args.rows, args.seed))


if __name__ == "__main__":
    main()
