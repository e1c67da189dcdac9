"""The campaign spec: defaults run, every invalid spec gets one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from coscope.config import CampaignSpec, load_spec, parse_spec
from coscope.errors import ConfigError

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_defaults_are_a_valid_campaign() -> None:
    spec = CampaignSpec()
    assert spec.policy.name == "ei"
    assert spec.resolved_store() == Path("runs/demo/trace.zarr")
    assert spec.resolved_tracking_uri().startswith("sqlite:///")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name.startswith("example-")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"policy": {"name": "greedy"}}, ["'policy.name'", "'greedy'", "ei"]),
        ({"scalarizer": {"name": "nope"}}, ["'scalarizer.name'", "'nope'", "loop_area"]),
        (
            {"scalarizer": {"name": "loop_area", "params": {"lo": 1}}},
            ["'scalarizer'", "does not take parameter(s) lo"],
        ),
        ({"sample": {"kind": "moon"}}, ["'sample.kind'", "'moon'", "synthetic_film"]),
        ({"instruments": [{"kind": "laser"}]}, ["'instruments.0.kind'", "'laser'", "simulated"]),
        ({"budget": {"max_cost": -1}}, ["'budget.max_cost'", "-1", "greater than 0"]),
        ({"budget": {"max_cost": None, "max_measurements": None}}, ["'budget'", "never ends"]),
        ({"polcy": {}}, ["'polcy' is not a spec field"]),
        ({"scalarizer": {"modality": "raman"}}, ["scalarizer.modality 'raman'", "beps_loop"]),
        (
            {"instruments": [{"name": "a"}, {"name": "a"}]},
            ["instrument names must be unique"],
        ),
        ({"name": "has space"}, ["'name'", "'has space'"]),
        ({"time_scale": "fast"}, ["'time_scale'", "'fast'"]),
        ({"policy": {"name": "ucb", "params": {"kappa": 1}}}, ["'policy'", "kappa", "beta"]),
        ({"policy": {"name": "random", "params": {"beta": 1}}}, ["'random' takes no params"]),
    ],
)
def test_invalid_specs_name_field_value_and_fix(data: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(data)
    message = str(info.value)
    assert message.startswith("invalid campaign spec: ") and message.endswith(".")
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_yaml_errors_are_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npolicy: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="no campaign spec at"):
        load_spec(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_spec(listing)


def test_overrides_replace_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\n")
    spec = load_spec(path, {"store": str(tmp_path / "t.zarr")})
    assert spec.resolved_store() == tmp_path / "t.zarr"


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"name": "thompson"}, "needs model: dkl"),
        ({"name": "ei", "model": "dkl", "window": 0}, "'policy.window' (got 0)"),  # even is fine
        ({"name": "random", "model": "dkl"}, "has no model"),
        ({"name": "ei", "model": "cnn"}, "'policy.model' (got 'cnn')"),
    ],
)
def test_dkl_policy_options_are_checked(policy: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec({"policy": policy})
    assert fragment in str(info.value)


def test_dkl_spec_is_valid() -> None:
    spec = parse_spec({"policy": {"name": "thompson", "model": "dkl", "window": 11}})
    assert spec.policy.model == "dkl" and spec.policy.window == 11
