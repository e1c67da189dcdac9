"""Instrument kinds from user code: ``kind: "package.module:factory"`` and entry points.

The worked example of docs/connect-your-instrument.md (examples/acme_afm) passes the
instrument contract suite as a plug-in, builds through every path the campaign uses, and a
spec naming a broken factory is refused with one sentence before anything is stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.campaign.test_loop import _run

from coscope.catalog import check_instrument_kind
from coscope.config import load_spec, parse_spec
from coscope.errors import ConfigError
from coscope.infra.compose import build_instrument_from_specs, check_spec_fits_sample
from coscope.instruments import build_instrument, build_sample
from coscope.instruments.contract import CHECKS, ContractCase
from coscope.storage import TraceStore
from coscope.types import Location, MeasurementRequest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PACKAGE = ROOT / "examples" / "acme_afm"
EXAMPLE_SPEC = ROOT / "examples" / "acme_afm.yaml"
SAMPLE = {"kind": "synthetic_film", "params": {"size": 12, "n_voltage": 32}}
OPTIONS = {"n_voltage": 32, "v_max": 8.5, "domain_um": 0.5}


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example package importable (as it is when installed or on PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_PACKAGE))


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: None) -> None:
    """The example package 'installed': its dist-info with the entry point on sys.path."""
    info = tmp_path / "acme_afm-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-afm\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[coscope.instruments]\nacme_afm = acme_afm:make_afm\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def _request(step: int, row: int, col: int, **params) -> MeasurementRequest:
    return MeasurementRequest(step, "afm", "beps_loop", Location(row, col), seed=7, params=params)


def _case(kind: str) -> ContractCase:
    sample = build_sample(SAMPLE["kind"], SAMPLE["params"], 0)

    def make():
        return build_instrument(
            "afm",
            sample,
            kind=kind,
            modalities=["beps_loop"],
            cost=2.0,
            noise=0.05,
            options=OPTIONS,
            travel_cost_per_um=0.5,
        )

    requests = [_request(3, 2, 5), _request(4, 11, 0), _request(5, 6, 6, stage_from=[0, 0])]
    return ContractCase(make, requests, sample.shape)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_example_kind_passes_the_contract_by_reference(example: None, check: str) -> None:
    CHECKS[check](_case("acme_afm:make_afm"))


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_example_kind_passes_the_contract_as_an_entry_point(
    installed: None, check: str
) -> None:
    assert check_instrument_kind("acme_afm") == "acme_afm"
    CHECKS[check](_case("acme_afm"))


def test_a_worker_builds_the_plug_in_from_json_specs(example: None) -> None:
    spec = parse_spec(
        {
            "sample": SAMPLE,
            "instruments": [
                {
                    "name": "afm",
                    "kind": "acme_afm:make_afm",
                    "options": OPTIONS,
                    "latency_s": 0.0,
                    "noise": 0.0,
                }
            ],
        }
    )
    data = spec.to_json_dict()
    inst = build_instrument_from_specs(
        data["sample"], data["instruments"][0], seed=0, time_scale=0.0
    )
    m = inst.measure(_request(0, 3, 4))
    assert m.signal.shape == (32,) and np.isfinite(m.signal).all()
    sample = build_sample(SAMPLE["kind"], SAMPLE["params"], 0)
    check_spec_fits_sample(spec, sample)  # built, and its axis agrees with the sample's


def _refusal(kind: str, options: dict | None = None, sample: dict = SAMPLE) -> str:
    spec = parse_spec(
        {
            "sample": sample,
            "instruments": [{"name": "afm", "kind": kind, "options": options or {}}],
        }
    )
    built = build_sample(spec.sample.kind, dict(spec.sample.params), 0)
    with pytest.raises(ConfigError) as caught:
        check_spec_fits_sample(spec, built)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("no_such_pkg.driver:make", {}, ["cannot be imported", "no_such_pkg"]),
        ("tests.user_instruments:missing", {}, ["cannot be imported", "missing"]),
        ("tests.user_instruments:NOT_CALLABLE", {}, ["not callable"]),
        ("tests.user_instruments:raises", {}, ["RuntimeError", "vendor SDK not licensed"]),
        ("tests.user_instruments:not_an_instrument", {}, ["of type int", "not an Instrument"]),
        ("tests.user_instruments:strict", {"gain": 1, "offset": 2}, ["invalid options"]),
        ("tests.user_instruments:strict", {}, ["invalid options", "gain"]),
    ],
)
def test_a_broken_factory_is_refused_in_one_sentence(kind, options, words) -> None:
    message = _refusal(kind, options)
    assert all(w in message for w in words), message


def test_an_axis_that_disagrees_with_the_sample_is_refused(example: None) -> None:
    message = _refusal("acme_afm:make_afm", {**OPTIONS, "v_max": 5.0})
    assert "axis" in message and "agree" in message


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("os:system", "standard library"),
        ("acme afm:make", "package.module:factory"),
        ("no_such_plugin", "unknown instrument kind"),
    ],
)
def test_validation_refuses_what_cannot_be_a_kind_without_importing(kind, words) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_spec({"instruments": [{"name": "afm", "kind": kind}]})


def _coscope_run(
    tmp_path: Path, spec: Path, *path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``coscope run SPEC`` in a subprocess with ``src`` and ``path`` on PYTHONPATH and
    ``env`` added to this process's environment."""
    pythonpath = os.pathsep.join(str(p) for p in (ROOT / "src", *path))
    env = {**os.environ, **(env or {}), "PYTHONPATH": pythonpath}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "coscope.cli", "run", str(spec), "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _cli_run(tmp_path: Path, kind: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: bad\nsample: {{kind: synthetic_film, params: {{size: 8}}}}\n"
        f"instruments: [{{name: afm, kind: '{kind}'}}]\nrun_dir: {tmp_path / 'run'}\n"
    )
    return _coscope_run(tmp_path, spec, ROOT)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("no_such_pkg.driver:make", "cannot be imported"),
        ("tests.user_instruments:raises", "RuntimeError"),
    ],
)
def test_the_cli_exits_2_with_one_sentence_and_stores_nothing(tmp_path: Path, kind, words) -> None:
    done = _cli_run(tmp_path, kind)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr
    assert not (tmp_path / "run" / "trace.zarr").exists()


def test_the_worked_example_runs_in_process(tmp_path: Path, example: None) -> None:
    """examples/acme_afm.yaml as it is (budget cut to 8, no latency), local executor."""
    spec = load_spec(EXAMPLE_SPEC, {"run_dir": str(tmp_path / "run"), "time_scale": 0.0})
    spec = spec.model_copy(update={"budget": type(spec.budget)(max_measurements=8)})
    outcome, ctx = _run(spec)
    assert outcome.status == "finished" and outcome.n_measurements == 8
    assert len({m.location for m in ctx.store.measurements()}) == 8


@pytest.mark.slow
def test_the_worked_example_runs_with_prefect_and_dask(tmp_path: Path) -> None:
    """examples/acme_afm.yaml through `coscope run`: the plug-in is built on a Dask worker."""
    text = EXAMPLE_SPEC.read_text().replace("max_measurements: 20", "max_measurements: 6")
    spec = tmp_path / "acme.yaml"
    spec.write_text(text + f"dask_workers: 1\nrun_dir: {tmp_path / 'run'}\n")
    done = _coscope_run(tmp_path, spec, EXAMPLE_PACKAGE)
    assert done.returncode == 0, done.stderr[-3000:]
    store = TraceStore.open(tmp_path / "run" / "trace.zarr", "r")
    assert store.counts()["measurements"] == 6
    assert store.get_attr("status") == "finished"
