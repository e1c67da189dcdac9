"""Pareto masks, reference points and hypervolumes (coscope.pareto) against botorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.pareto import is_non_dominated

from coscope.pareto import default_ref_point, hypervolume, pareto_mask


def _botorch_volume(Y: np.ndarray, ref: np.ndarray) -> float:
    part = DominatedPartitioning(ref_point=torch.as_tensor(ref), Y=torch.as_tensor(Y))
    return float(part.compute_hypervolume())


@pytest.mark.parametrize("m", [2, 3])
def test_mask_and_volume_agree_with_botorch(m: int) -> None:
    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 40):
        Y = rng.normal(size=(n, m))
        mask = pareto_mask(Y)
        assert mask.tolist() == is_non_dominated(torch.as_tensor(Y), deduplicate=False).tolist()
        ref = default_ref_point(Y)
        assert hypervolume(Y, ref) == pytest.approx(_botorch_volume(Y, ref), rel=1e-9, abs=1e-12)


def test_known_two_dimensional_volume() -> None:
    Y = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5]])  # the last is dominated
    assert pareto_mask(Y).tolist() == [True, True, True, False]
    assert hypervolume(Y, np.zeros(2)) == pytest.approx(3 + 2 + 1)
    assert hypervolume(Y, np.array([5.0, 5.0])) == 0.0  # nothing above the reference


def test_default_reference_point_only_falls_so_the_volume_never_does() -> None:
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(30, 2))
    refs = [default_ref_point(Y[: k + 1]) for k in range(30)]
    volumes = [hypervolume(Y[: k + 1], refs[k]) for k in range(30)]
    assert all((b <= a).all() for a, b in zip(refs, refs[1:], strict=False))
    assert all(b >= a for a, b in zip(volumes, volumes[1:], strict=False))
    low, high = Y.min(0), Y.max(0)
    assert np.allclose(refs[-1], low - 0.1 * (high - low))
    assert default_ref_point(Y, [None, 7.0])[1] == 7.0
