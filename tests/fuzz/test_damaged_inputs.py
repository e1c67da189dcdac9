"""Damaged and hostile input files get one sentence, never a traceback, and write nothing.

Dataset sources (truncated or bit-flipped HDF5 and npz), spec files (YAML bombs, deep
nesting, huge numbers, binary, oversized) and intervention payloads (deep, oversized).
Seeded: the same damage every run.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from coscope.config import MAX_SPEC_BYTES, load_spec
from coscope.errors import ConfigError, DatasetError
from coscope.steer_requests import MAX_PAYLOAD_CHARS, parse_pairs
from coscope.storage.dataset_readers import import_dataset

BEPS = Path(__file__).resolve().parents[3] / "shared/datasets/dtmicroscope-afm/BEPS_PTO_50x50.h5"


def _one_sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text
    return text


def _npz(path: Path) -> bytes:
    rng = np.random.default_rng(0)
    np.savez(path, image=rng.random((8, 8)), spectra=rng.random((8, 8, 16)), axis=np.arange(16.0))
    return path.read_bytes()


def _damaged(data: bytes, how: str, seed: int) -> bytes:
    rng = random.Random(seed)
    if how == "truncated":
        return data[: rng.randrange(1, len(data))]
    if how == "empty":
        return b""
    flipped = bytearray(data)
    for _ in range(64):
        i = rng.randrange(len(flipped))
        flipped[i] ^= 1 << rng.randrange(8)
    return bytes(flipped)


def _import_or_refuse(source: Path, out: Path) -> None:
    try:
        import_dataset(source, out)
    except DatasetError as exc:
        _one_sentence(exc)
        assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped"])
@pytest.mark.parametrize("seed", range(4))
def test_a_damaged_npz_is_refused_in_one_sentence(tmp_path: Path, how: str, seed: int) -> None:
    data = _npz(tmp_path / "ok.npz")
    source = tmp_path / "bad.npz"
    source.write_bytes(_damaged(data, how, seed))
    _import_or_refuse(source, tmp_path / "out.zarr")


@pytest.mark.skipif(not BEPS.exists(), reason="the BEPS dataset is not beside the checkout")
@pytest.mark.parametrize("how", ["truncated", "flipped"])
@pytest.mark.parametrize("seed", range(3))
def test_a_damaged_hdf5_is_refused_in_one_sentence(tmp_path: Path, how: str, seed: int) -> None:
    source = tmp_path / "bad.h5"
    source.write_bytes(_damaged(BEPS.read_bytes(), how, seed))
    _import_or_refuse(source, tmp_path / "out.zarr")


def _bomb(levels: int = 8) -> str:
    text, prev = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n", "a0"
    for i in range(1, levels + 1):
        text += f"a{i}: &a{i} [{', '.join([f'*{prev}'] * 9)}]\n"
        prev = f"a{i}"
    return text + f"instruments: [{{name: afm, options: {{x: *{prev}}}}}]\n"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (_bomb(), "expands to more than"),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "nests too deeply"),
        ("seed: " + "9" * 10_000 + "\n", "a number too long"),
        (b"\xff\xfe\x00name: x\n", "not UTF-8"),
        ("name: x\n#" + "x" * (MAX_SPEC_BYTES + 1) + "\n", "bytes"),
    ],
)
def test_a_hostile_spec_file_is_one_sentence(tmp_path: Path, content, words: str) -> None:
    path = tmp_path / "spec.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError, match=words) as info:
        load_spec(path)
    _one_sentence(info.value)


def test_a_spec_with_a_few_aliases_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: aliased\ncommon: &c {latency_s: 0.0, cost: 2.0}\n"
        "instruments: [{name: afm, <<: *c}]\n".replace("common: &c", "x-common: &c")
    )
    with pytest.raises(ConfigError, match="x-common"):  # an unknown field, not a bomb
        load_spec(path)


@pytest.mark.parametrize(
    ("pairs", "payload", "words"),
    [
        ([], "[" * 60_000 + "]" * 60_000, "characters"),
        ([], '{"a":' * 3000 + "1" + "}" * 3000, "nests too deeply"),
        (["rect=" + "[" * 3000 + "]" * 3000], None, "nests too deeply"),
        (["rect=" + "1" * (MAX_PAYLOAD_CHARS + 1)], None, "characters"),
    ],
)
def test_a_hostile_intervention_payload_is_one_sentence(pairs, payload, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        parse_pairs(pairs, payload)
    _one_sentence(info.value)
