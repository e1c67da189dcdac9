from __future__ import annotations

import math

import pytest
import torch
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator

from coscope import catalog
from coscope.agents import acquisition
from coscope.agents.acquisition import (
    build_acquisition,
    evaluate,
    get_policy,
    policy_names,
    register_policy,
)
from coscope.errors import ConfigError


class FakeModel(Model):
    """Posterior with mean = x[0] and std = x[1]; no fitting."""

    num_outputs = 1

    def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None):
        mean = X[..., 0]
        var = X[..., 1] ** 2
        return GPyTorchPosterior(MultivariateNormal(mean, DiagLinearOperator(var)))

    @property
    def batch_shape(self):
        return torch.Size()


# (mean, std) per candidate
MOMENTS = torch.tensor(
    [[0.0, 1.0], [1.0, 0.1], [0.5, 0.5], [-1.0, 2.0], [1.2, 0.01]], dtype=torch.float64
)


def _phi(z):
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _ei(mu, s, best):
    z = (mu - best) / s
    return (mu - best) * _Phi(z) + s * _phi(z)


def test_ei_matches_closed_form_and_order():
    best = 1.0
    acqf = build_acquisition("ei", FakeModel(), best_f=best)
    got = evaluate(acqf, MOMENTS, batch_size=2)
    want = torch.tensor([math.log(_ei(float(m), float(s), best)) for m, s in MOMENTS])
    torch.testing.assert_close(got, want.to(got), rtol=1e-6, atol=1e-9)
    # by hand: EI(1.2, .01) = 0.200, EI(-1, 2) = 0.166, EI(0, 1) = 0.083,
    # EI(0.5, 0.5) = 0.042, EI(1, 0.1) = 0.040
    assert torch.argsort(got, descending=True).tolist() == [4, 3, 0, 2, 1]
    assert math.exp(float(got[4])) == pytest.approx(0.2, abs=1e-3)
    assert math.exp(float(got[3])) == pytest.approx(0.1667, abs=1e-3)


def test_ucb_matches_mean_plus_sqrt_beta_std():
    acqf = build_acquisition("ucb", FakeModel(), best_f=0.0, params={"beta": 4.0})
    got = evaluate(acqf, MOMENTS)
    want = MOMENTS[:, 0] + 2.0 * MOMENTS[:, 1]
    torch.testing.assert_close(got, want)
    assert int(torch.argmax(got)) == 3  # -1 + 2*2 = 3
    low_beta = evaluate(
        build_acquisition("ucb", FakeModel(), best_f=0.0, params={"beta": 0}), MOMENTS
    )
    assert int(torch.argmax(low_beta)) == 4  # pure exploitation: highest mean


def test_maxvar_is_posterior_std():
    got = evaluate(build_acquisition("maxvar", FakeModel(), best_f=0.0), MOMENTS, batch_size=3)
    torch.testing.assert_close(got, MOMENTS[:, 1])


def test_batched_evaluation_of_many_candidates_matches():
    X = torch.rand(10_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    acqf = build_acquisition("ei", FakeModel(), best_f=0.5)
    torch.testing.assert_close(
        evaluate(acqf, X, batch_size=999), evaluate(acqf, X, batch_size=10_000)
    )


def test_unknown_policy_lists_names():
    with pytest.raises(ConfigError, match="ei, maxvar, ucb"):
        get_policy("thompson")
    with pytest.raises(ConfigError, match="beta"):
        build_acquisition("ucb", FakeModel(), best_f=0.0, params={"kappa": 1.0})


def test_register_policy_adds_a_name(monkeypatch):
    monkeypatch.setattr(acquisition.POLICIES, "_items", dict(acquisition.POLICIES._items))
    monkeypatch.setattr(catalog.POLICIES, "_items", dict(catalog.POLICIES._items))  # declared too

    @register_policy("mean_only_test")
    def mean_only(model, *, best_f):
        return build_acquisition("ucb", model, best_f=best_f, params={"beta": 0.0})

    assert "mean_only_test" in policy_names()
    got = evaluate(build_acquisition("mean_only_test", FakeModel(), best_f=0.0), MOMENTS)
    torch.testing.assert_close(got, MOMENTS[:, 0])
