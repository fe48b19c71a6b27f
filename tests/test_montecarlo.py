"""simulate(): shapes, determinism, thinning and input checks on 4 x 4 lattices.

Every run uses the same lattice size, chain count and stage lengths, so the
jitted chunk function compiles only a few times for the whole module.
"""

import logging

import jax
import numpy as np
import pytest

from dcl_prob import montecarlo
from dcl_prob.data import load_dataset, save_dataset
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.montecarlo import (
    SimulationResult,
    integrated_autocorrelation_time,
    simulate,
)

MODEL = IsingModel()
L = 4
RUN = dict(n_chains=8, burn_in=256, pilot_steps=256, progress=False)


@pytest.fixture(scope="module")
def wolff_result():
    return simulate(MODEL, L, 3.0, 100, key=jax.random.key(1), **RUN)


def test_simulate_shapes_and_dtypes(wolff_result):
    result = wolff_result
    assert isinstance(result, SimulationResult)
    assert result.spins.shape == (100, L, L)
    assert result.spins.dtype == np.int8
    assert set(np.unique(result.spins)) <= {-1, 1}
    assert result.energy.shape == (100,)
    assert result.abs_m.shape == (100,)
    assert set(result.tau_int) == {"energy", "abs_m"}
    assert result.n_chains == 8
    assert result.sampler == "wolff"
    assert result.mean_cluster_size > 1.0


def test_simulate_records_consistent_observables(wolff_result):
    result = wolff_result
    energy = np.asarray(MODEL.energy(result.spins))
    np.testing.assert_array_equal(result.energy, energy)
    abs_m = np.abs(result.spins.mean(axis=(1, 2), dtype=np.float32))
    np.testing.assert_allclose(result.abs_m, abs_m, rtol=1e-6)


def test_simulate_thin_follows_tau(wolff_result):
    result = wolff_result
    assert isinstance(result.thin, int)
    assert result.thin >= 1
    assert result.thin == max(1, int(np.ceil(max(result.tau_int.values()))))
    assert result.pilot_steps >= 50 * max(result.tau_int.values())
    assert result.burn_in == 256


def test_simulate_is_deterministic(wolff_result):
    again = simulate(MODEL, L, 3.0, 100, key=jax.random.key(1), **RUN)
    np.testing.assert_array_equal(again.spins, wolff_result.spins)
    assert again.tau_int == wolff_result.tau_int
    assert again.thin == wolff_result.thin

    other = simulate(MODEL, L, 3.0, 100, key=jax.random.key(2), **RUN)
    assert not np.array_equal(other.spins, wolff_result.spins)


def test_simulate_explicit_thin_and_uneven_split():
    # 99 samples over 8 chains: 13 draws per chain, cut to 99.
    result = simulate(
        MODEL, L, 3.0, 99, key=jax.random.key(3), sampler="checkerboard", thin=5, **RUN
    )
    assert result.spins.shape == (99, L, L)
    assert result.thin == 5
    assert result.mean_cluster_size is None
    assert 0.0 < result.acceptance < 1.0


def test_simulate_progress_bar_off_under_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    simulate(MODEL, L, 3.0, 100, key=jax.random.key(1), **{**RUN, "progress": True})
    assert capsys.readouterr().err == ""


def test_simulate_doubles_short_pilot(monkeypatch, caplog):
    # No tau passes a factor of 1e6, so the 256-step pilot doubles once to
    # 512 steps, reaches the maximum and warns.
    monkeypatch.setattr(montecarlo, "PILOT_TAU_FACTOR", 10**6)
    monkeypatch.setattr(montecarlo, "MAX_PILOT_STEPS", 512)
    with caplog.at_level(logging.WARNING, logger="dcl_prob.montecarlo"):
        result = simulate(MODEL, L, 3.0, 100, key=jax.random.key(1), **RUN)
    assert result.pilot_steps == 512
    assert "tau_int and thin may be underestimated" in caplog.text


def test_dataset_attrs_round_trip(wolff_result, tmp_path):
    path = tmp_path / "data.h5"
    save_dataset(
        path, wolff_result.spins, attrs=wolff_result.dataset_attrs(MODEL, seed=1)
    )
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, wolff_result.spins)
    assert dataset.temperature == 3.0
    assert dataset.attrs["thin"] == wolff_result.thin
    assert dataset.attrs["tau_int_abs_m"] == wolff_result.tau_int["abs_m"]
    assert dataset.attrs["sampler"] == "wolff"
    assert dataset.attrs["seed"] == 1
    assert dataset.attrs["J"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sampler="gibbs"), "sampler='gibbs' is invalid"),
        (dict(model=IsingModel(h=0.1)), "h=0.1 is invalid"),
        (dict(temperature=0.0), "temperature=0.0 is invalid"),
        (dict(n_samples=0), "n_samples=0 is invalid"),
        (dict(n_chains=2.5), "n_chains=2.5 is invalid"),
        (dict(thin=0), "thin=0 is invalid"),
        (dict(L=1), "L=1 is invalid"),
    ],
)
def test_simulate_rejects_invalid_input(kwargs, match):
    arguments = dict(model=MODEL, L=L, temperature=3.0, n_samples=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(**arguments, key=jax.random.key(0), progress=False)


def test_tau_of_independent_and_constant_traces():
    rng = np.random.default_rng(0)
    tau = integrated_autocorrelation_time(rng.normal(size=(4, 2000)))
    assert 0.9 < tau < 1.1
    assert integrated_autocorrelation_time(np.ones((4, 100))) == 1.0


def test_tau_of_ar1_trace():
    # AR(1) with coefficient rho has tau = (1 + rho) / (1 - rho) = 3 for 0.5.
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(8, 20000))
    trace = np.zeros_like(noise)
    for t in range(1, noise.shape[1]):
        trace[:, t] = 0.5 * trace[:, t - 1] + noise[:, t]
    assert 2.8 < integrated_autocorrelation_time(trace) < 3.2
