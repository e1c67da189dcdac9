"""The light catalog matches the registries it stands for, and extends with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coscope import catalog
from coscope.config import parse_spec
from coscope.errors import ConfigError
from coscope.registry import Names, Registry

_REGISTERED = """
import inspect, json
from coscope.agents import acquisition, agent
from coscope.agents.multitask_agent import CHOOSER_POLICIES
from coscope.instruments import instrument_kinds, sample_kinds
from coscope.models.boundary_warp import MAX_BOUNDARIES

print(json.dumps({
    "samples": list(sample_kinds()),
    "instruments": list(instrument_kinds()),
    "acquisition": {
        n: [p for p in inspect.signature(acquisition.get_policy(n)).parameters
            if p not in ("model", "best_f")]
        for n in acquisition.policy_names()
    },
    "baselines": sorted(agent._BASELINES),
    "choosers": list(CHOOSER_POLICIES),
    "max_boundaries": MAX_BOUNDARIES,
}))
"""


@pytest.fixture(scope="module")
def registered() -> dict:
    """What the heavy registries hold once every built-in module is imported (fresh process)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", _REGISTERED], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_every_registered_kind_is_in_the_catalog(registered: dict) -> None:
    assert registered["samples"] == list(catalog.SAMPLE_KINDS.builtin)
    assert registered["instruments"] == list(catalog.INSTRUMENT_KINDS.builtin)


def test_every_registered_policy_is_in_the_catalog_with_its_options(registered: dict) -> None:
    names = catalog.policy_names("acquisition")
    acquisition = {n: list(catalog.POLICIES.get(n).params) for n in names}
    assert registered["acquisition"] == acquisition
    assert registered["baselines"] == list(catalog.policy_names("baseline"))
    assert registered["choosers"] == list(catalog.CHOOSER_POLICIES)
    assert registered["max_boundaries"] == catalog.MAX_BOUNDARIES
    assert set(catalog.policy_names()) == {
        *acquisition,
        *registered["baselines"],
        *registered["choosers"],
        "thompson",
        "map",
        "balance",
        "conavigate",
        *catalog.MULTI_OBJECTIVE_POLICIES,
        "hypotheses",
        "fidelity",
    }
    assert catalog.policy_names("dkl") == ("balance", "map")
    assert catalog.MULTI_OBJECTIVE_POLICIES == ("qlognehvi", "novelty")


def test_a_registry_declares_its_names() -> None:
    names = Names("widget", ("a",))
    widgets: Registry[int] = Registry("widget", names)
    assert "b" not in names
    widgets.register("b")(2)
    assert names.names() == ("a", "b") and names.builtin == ("a",)
    assert names.check("b") == "b"
    with pytest.raises(ValueError, match="unknown widget; use one of a, b"):
        names.check("c")


def test_a_users_acquisition_policy_is_valid_in_a_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from coscope.agents import acquisition

    monkeypatch.setattr(acquisition.POLICIES, "_items", dict(acquisition.POLICIES._items))
    monkeypatch.setattr(catalog.POLICIES, "_items", dict(catalog.POLICIES._items))
    with pytest.raises(ConfigError, match="'policy.name'"):
        parse_spec({"policy": {"name": "greedy_test"}})

    @acquisition.register_policy("greedy_test")
    def greedy(model, *, best_f, weight=1.0):
        return acquisition.build_acquisition("ucb", model, best_f=best_f, params={"beta": 0})

    spec = parse_spec({"policy": {"name": "greedy_test", "params": {"weight": 2}}})
    assert spec.policy.params == {"weight": 2}
    with pytest.raises(ConfigError, match=r"does not take params \['beta'\]; it takes \['weight'"):
        parse_spec({"policy": {"name": "greedy_test", "params": {"beta": 2}}})


def test_a_builtin_policy_registered_with_other_options_is_refused() -> None:
    with pytest.raises(ConfigError, match="make them agree"):
        catalog.declare_acquisition("ucb", ("kappa",))
    with pytest.raises(ConfigError, match="make them agree"):
        catalog.declare_acquisition("random", ())
    catalog.declare_acquisition("ucb", ("beta",))  # as declared: accepted


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"name": "ucb", "params": {"beta": -1}}, "'beta' must be a number >= 0"),
        ({"name": "ei", "params": {"beta": 1}}, "'ei' takes no params; remove ['beta']"),
        ({"name": "conavigate", "params": {"n_design": 0}}, "'n_design' must be an integer >= 1"),
        ({"name": "conavigate", "params": {"n_sims": 3}}, "takes ['n_design', 'n_eff']"),
        ({"name": "gain_per_cost", "params": {"use_structure": 2}}, "is a switch"),
        ({"name": "max_uncertainty", "model": "dkl"}, "works with model multitask (or gp)"),
        ({"name": "thompson", "model": "gp"}, "needs model: dkl"),
        ({"name": "raster", "model": "dkl"}, "has no model; remove model: dkl"),
        ({"name": "maxvar", "model": "multitask"}, "model: multitask needs policy"),
    ],
)
def test_policy_params_are_checked_by_their_rules(policy: dict, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec({"policy": policy})
    assert words in str(info.value) and "\n" not in str(info.value)
