"""The spectrum VAE: round trip, determinism, phase separation, bad input in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from coscope.errors import ConfigError, ModelError
from coscope.instruments.library import combinatorial_library
from coscope.models.fitting import fit_model
from coscope.models.vae import decode, encode, fit_vae


@pytest.fixture(scope="module")
def library():
    sample = combinatorial_library(64, seed=1)
    raman = sample.truth["raman"].reshape(64, -1)
    rng = np.random.default_rng(0)
    train = rng.choice(64, size=24, replace=False)
    noisy = raman[train] + 0.01 * rng.standard_normal((24, raman.shape[1]))
    return sample, raman, noisy


@pytest.fixture(scope="module")
def fitted(library):
    return fit_model("vae", library[2], np.zeros(24), seed=3, iterations=300, latent_dim=2)


def test_round_trip_reconstructs_unseen_spectra(library, fitted) -> None:
    _, raman, _ = library
    z = encode(fitted, raman)
    assert z.shape == (64, 2) and np.isfinite(z).all()
    rec = decode(fitted, z)
    rel = np.sqrt(np.mean((rec - raman) ** 2)) / raman.std()
    assert rec.shape == raman.shape and rel < 0.3  # mean spectrum alone: rel = 1
    mean_only = np.sqrt(np.mean((raman.mean(0) - raman) ** 2)) / raman.std()
    assert rel < 0.5 * mean_only
    record = fitted.record(4, 24)
    assert record.n_train == 24 and record.hyperparameters["latent_dim"] == 2.0


def test_fit_is_deterministic_in_data_and_seed(library, fitted) -> None:
    _, raman, noisy = library
    again = fit_vae(noisy, seed=3, iterations=300, latent_dim=2)
    assert np.array_equal(encode(again, raman), encode(fitted, raman))
    other = fit_vae(noisy, seed=4, iterations=300, latent_dim=2)
    assert not np.allclose(encode(other, raman), encode(fitted, raman))


def test_latents_separate_the_two_phases(library, fitted) -> None:
    sample, raman, _ = library
    z = encode(fitted, raman)
    phase = sample.structure.reshape(-1) > 0.14  # nominal composition vs the boundary x_c
    # the best single latent direction (Fisher's) splits the phases with a wide margin
    a, b = z[phase], z[~phase]
    pooled = np.cov(np.vstack([a - a.mean(0), b - b.mean(0)]).T)
    w = np.linalg.solve(pooled + 1e-9 * np.eye(2), a.mean(0) - b.mean(0))
    pa, pb = a @ w, b @ w
    threshold = 0.5 * (pa.mean() + pb.mean())
    accuracy = (np.sum(pa > threshold) + np.sum(pb <= threshold)) / len(z)
    assert accuracy >= 0.9


@pytest.mark.parametrize(
    ("spectra", "words"),
    [
        (np.full((5, 8), np.nan), "NaN"),
        (np.ones((5, 1)), "shape"),
        (np.ones((1, 8)), "at least 2 spectra"),
    ],
)
def test_bad_training_spectra_are_one_sentence(spectra, words) -> None:
    with pytest.raises(ModelError, match=words) as info:
        fit_vae(spectra, seed=0, iterations=5)
    assert "\n" not in str(info.value)


def test_encoding_a_spectrum_of_the_wrong_length_is_one_sentence(fitted) -> None:
    with pytest.raises(ModelError, match="channels") as info:
        encode(fitted, np.ones((2, 7)))
    assert "\n" not in str(info.value)


def test_fit_model_refuses_an_option_the_vae_does_not_take(library) -> None:
    with pytest.raises(ConfigError, match="does not take"):
        fit_model("vae", library[2], np.zeros(24), seed=0, iterations=5, rank=2)
