"""Posteriors over physical couplings: likelihoods, adjustment, NUTS, LOO, PPC, CLI.

The simulated data sets and the main posterior are module fixtures, so that
JAX compiles each sampler and each NUTS program once. Every seed is fixed,
so each test is deterministic. The failure rate stated at a statistical
assertion is the probability that a fresh seed would fail it.
"""

import argparse
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob import bayes
from dcl_prob.bayes_adjust import curvature_adjustment
from dcl_prob.bayes_families import coupling_family
from dcl_prob.cli import main
from dcl_prob.cli_couplings import add_couplings_parser, run_couplings
from dcl_prob.data import save_dataset
from dcl_prob.enumeration import all_states, configuration_index
from dcl_prob.hamiltonians import (
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
)
from dcl_prob.montecarlo import simulate

L = 6
TEMPERATURE = 3.0
N_CONFIGS = 400
N_CHAINS = 16
NUTS = {"num_warmup": 300, "num_samples": 300, "num_chains": 4}


def _simulate(temperature: float, *, seed: int, thin=None):
    """Metropolis samples of the J = 1 Ising model; one compiled program for all."""
    return simulate(
        IsingModel(),
        L,
        temperature,
        N_CONFIGS,
        key=jax.random.key(seed),
        sampler="checkerboard",
        n_chains=N_CHAINS,
        burn_in=200,
        pilot_steps=256,
        thin=thin,
        progress=False,
    )


@pytest.fixture(scope="module")
def ising_data():
    """400 decorrelated 6 x 6 configurations of the J = 1 Ising model at T = 3."""
    return _simulate(TEMPERATURE, seed=0)


@pytest.fixture(scope="module")
def ising_fit(ising_data):
    """Adjusted pseudo-likelihood posterior of J for ``ising_data``."""
    return bayes.posterior(
        ising_data.spins, TEMPERATURE, "J", key=jax.random.key(1), **NUTS
    )


def _brute_force_log_conditionals(model, spins, values, temperature):
    """``log p(s_i | rest)`` from the full energy with site ``i`` set to each value."""
    n, size, _ = spins.shape
    result = np.empty((n, size, size))
    with jax.enable_x64(True):
        for i, j in np.ndindex(size, size):
            energies = []
            for value in values:
                changed = spins.copy()
                changed[:, i, j] = value
                energies.append(np.asarray(model.energy(jnp.asarray(changed))))
            log_weights = -np.stack(energies, axis=-1) / temperature
            log_norm = np.logaddexp.reduce(log_weights, axis=-1)
            chosen = np.searchsorted(values, spins[:, i, j])
            result[:, i, j] = log_weights[np.arange(n), chosen] - log_norm
    return result


CONDITIONAL_CASES = [
    # (model name, q, couplings, reference model, state values)
    ("J+J2+h", None, [0.7, -0.4, 0.3], IsingNNNModel(J=0.7, J2=-0.4, h=0.3), [-1, 1]),
    ("J", None, [-0.8], IsingModel(J=-0.8), [-1, 1]),
    ("potts", 3, [1.1], PottsModel(q=3, J=1.1), [0, 1, 2]),
]


@pytest.mark.parametrize("name, q, couplings, reference, values", CONDITIONAL_CASES)
def test_conditionals_match_enumeration(name, q, couplings, reference, values):
    configs = all_states(3, values)[:: 7 if q else 1][:512]
    family = coupling_family(name, L=3, q=q)
    with jax.enable_x64(True):
        theta = jnp.asarray(couplings, jnp.float64)
        direct = np.asarray(family.log_conditionals(theta, configs, 1.7))
        summed = np.asarray(family.log_pl(theta, family.pl_features(configs), 1.7))
    expected = _brute_force_log_conditionals(reference, configs, values, 1.7)
    np.testing.assert_allclose(direct, expected, atol=1e-10)
    np.testing.assert_allclose(summed, expected.sum(axis=(1, 2)), atol=1e-9)


def test_spin_glass_conditionals_match_enumeration():
    bonds = np.random.default_rng(0).standard_normal((2, 3, 3))
    configs = all_states(3, [-1, 1])
    family = coupling_family("spin-glass", L=3)
    with jax.enable_x64(True):
        theta = jnp.asarray(bonds.reshape(-1))
        summed = np.asarray(family.log_pl(theta, family.pl_features(configs), 0.9))
        energy = np.asarray(-family.statistics(configs) @ theta)
        reference = EdwardsAndersonModel(bonds)
        expected_energy = np.asarray(reference.energy(jnp.asarray(configs)))
    expected = _brute_force_log_conditionals(reference, configs, [-1, 1], 0.9)
    np.testing.assert_allclose(summed, expected.sum(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(energy, expected_energy, atol=1e-5)


def test_adjustment_matches_sandwich(ising_data):
    family = coupling_family("J+J2", L=L)
    adjustment = curvature_adjustment(
        family, family.pl_features(ising_data.spins), TEMPERATURE, prior_scale=1.0
    )
    matrix = np.asarray(adjustment.matrix, np.float64)
    hessian = adjustment.hessian
    target = hessian @ np.linalg.solve(adjustment.score_covariance, hessian)
    # C^T H C = H J^-1 H up to the float32 rounding of C.
    np.testing.assert_allclose(matrix.T @ hessian @ matrix, target, rtol=1e-4)
    np.testing.assert_allclose(
        np.linalg.inv(target), adjustment.sandwich_covariance(), rtol=1e-8
    )


def test_posterior_mean_near_truth(ising_fit):
    J = ising_fit.posterior["J"].values
    # For a calibrated posterior |mean - 1| > 4 sd has probability 6e-5.
    assert abs(J.mean() - 1.0) < 4 * J.std()
    assert J.std() < 0.05
    rhat = float(az.rhat(ising_fit, var_names=["J"])["J"])
    assert rhat < 1.05


def test_inference_data_groups(ising_fit):
    groups = set(ising_fit.groups())
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in groups
    assert "constant_data" in groups
    pointwise = ising_fit.log_likelihood["spins"]
    assert pointwise.dims == ("chain", "draw", "config")
    assert pointwise.shape == (4, 300, N_CONFIGS)
    assert ising_fit.observed_data["spins"].shape == (N_CONFIGS, L, L)
    assert ising_fit.posterior.attrs["adjusted"] == 1
    assert ising_fit.posterior.attrs["num_divergences"] == 0


def test_adjusted_interval_wider_at_high_temperature():
    # Far above T_c each bond enters the conditionals of both its sites, so
    # the score covariance J exceeds the curvature H (J / H -> 2 as T -> oo).
    # At T = 4 with J = 1, J / H is about 1.5 with a standard error of 0.1 for
    # 400 configurations, so J > H fails with rate < 1e-6.
    data = _simulate(4.0, seed=2)
    fits = {
        adjusted: bayes.posterior(
            data.spins, 4.0, "J", key=jax.random.key(3), adjusted=adjusted, **NUTS
        )
        for adjusted in (True, False)
    }
    widths = {}
    for adjusted, idata in fits.items():
        low, high = np.quantile(idata.posterior["J"].values, [0.05, 0.95])
        widths[adjusted] = high - low
    assert widths[True] > widths[False]
    # The width ratio is 1 / C; the sd of each quantile difference from about
    # 1000 effective draws is 3-4%, so a 12% tolerance fails with rate < 1e-3.
    scale = 1.0 / float(fits[True].constant_data["pl_adjustment_matrix"][0, 0])
    assert widths[True] / widths[False] == pytest.approx(scale, rel=0.12)


def test_block_scores_widen_for_repeated_configs(ising_data):
    # Each configuration twice in a row: perfectly correlated pairs. Blocks of
    # two double J relative to single configurations, so C shrinks by sqrt(2),
    # up to the B / (B - 1) factor of the block covariance.
    family = coupling_family("J", L=L)
    half = N_CONFIGS // 2  # keeps the feature shape of the other tests
    repeated = np.repeat(ising_data.spins[:half], 2, axis=0)
    features = family.pl_features(repeated)
    matrices = [
        float(
            curvature_adjustment(
                family, features, TEMPERATURE, prior_scale=1.0, block_size=size
            ).matrix[0, 0]
        )
        for size in (1, 2)
    ]
    assert matrices[1] / matrices[0] == pytest.approx(np.sqrt(0.5), rel=2e-3)


def test_compare_models_returns_table(ising_data, ising_fit):
    table = bayes.compare_models(
        ising_data.spins,
        TEMPERATURE,
        ("J", "J+J2"),
        key=jax.random.key(4),
        posteriors={"J": ising_fit},
        **NUTS,
    )
    assert set(table.index) == {"J", "J+J2"}
    for column in ("elpd_loo", "p_loo", "elpd_diff", "weight"):
        assert column in table.columns
    assert np.all(np.isfinite(table["elpd_loo"]))


def test_ppc_plot_written(ising_fit, tmp_path):
    checked = bayes.posterior_predictive_check(
        ising_fit, key=jax.random.key(5), num_draws=2, num_configs=N_CONFIGS
    )
    predictive = checked.posterior_predictive
    assert predictive["energy"].shape == (1, 2, N_CONFIGS)
    assert predictive["correlation"].shape == (1, 2, N_CONFIGS, L // 2 + 1)
    assert checked.observed_data["energy"].shape == (N_CONFIGS,)
    path = tmp_path / "ppc.png"
    bayes.plot_ppc(checked, path)
    assert path.stat().st_size > 0


class _ExactIsing:
    """Exact Boltzmann distribution of the 3 x 3 Ising model, as a proposal."""

    def __init__(self, J: float, temperature: float):
        self.configs = all_states(3, [-1, 1])
        with jax.enable_x64(True):
            energies = np.asarray(IsingModel(J=J).energy(jnp.asarray(self.configs)))
        log_weights = -energies / temperature
        self.log_probs = log_weights - np.logaddexp.reduce(log_weights)

    def sample(self, key, shape):
        index = jax.random.categorical(key, jnp.asarray(self.log_probs), shape=shape)
        return jnp.asarray(self.configs)[index]

    def log_prob(self, spins):
        return jnp.asarray(
            self.log_probs[configuration_index(np.asarray(spins), [-1, 1])]
        )


@pytest.fixture(scope="module")
def small_exact_data():
    """300 exact samples of the 3 x 3 Ising model, J = 0.6 at T = 2."""
    return np.asarray(_ExactIsing(0.6, 2.0).sample(jax.random.key(6), (300,)))


def test_dcl_posterior_near_truth(small_exact_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        idata = bayes.posterior(
            small_exact_data,
            2.0,
            "J",
            key=jax.random.key(7),
            likelihood="dcl",
            proposal=_ExactIsing(0.45, 2.0),
            num_proposal_samples=4096,
            **NUTS,
        )
    J = idata.posterior["J"].values
    # For a calibrated posterior |mean - 0.6| > 4 sd has probability 6e-5.
    assert abs(J.mean() - 0.6) < 4 * J.std()
    assert idata.posterior.attrs["proposal_ess"] > 1000
    assert idata.log_likelihood["spins"].shape == (4, 300, 300)


def test_dcl_warns_on_low_ess(small_exact_data):
    with pytest.warns(UserWarning, match="effective sample size"):
        bayes.posterior(
            small_exact_data,
            2.0,
            "J",
            key=jax.random.key(8),
            likelihood="dcl",
            proposal=_ExactIsing(-1.5, 2.0),
            num_proposal_samples=4096,
            **NUTS,
        )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model": "J3"}, "model='J3' is invalid"),
        ({"likelihood": "dcl"}, "needs a fitted proposal"),
        ({"likelihood": "dcl", "adjusted": True}, "pseudo-likelihood only"),
        ({"likelihood": "ml"}, "likelihood='ml' is invalid"),
        ({"block_size": 300}, "fewer than 2 blocks"),
        ({"model": "potts", "q": 2}, r"values \[-1\]"),
    ],
)
def test_posterior_rejects_bad_input(ising_data, options, message):
    spins = ising_data.spins[:400]
    options = {"model": "J", **options}
    model = options.pop("model")
    with pytest.raises(ValueError, match=message):
        bayes.posterior(spins, TEMPERATURE, model, key=jax.random.key(0), **options)


def test_posterior_rejects_01_spins(ising_data):
    spins = (ising_data.spins + 1) // 2
    with pytest.raises(ValueError, match=r"s = 2 \* x - 1"):
        bayes.posterior(spins, TEMPERATURE, "J", key=jax.random.key(0))


def _parse(argv):
    parser = argparse.ArgumentParser(prog="dcl")
    add_couplings_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["couplings", *argv])


@pytest.fixture(scope="module")
def data_file(ising_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("couplings") / "data.h5"
    attrs = ising_data.dataset_attrs(IsingModel(), seed=0)
    save_dataset(path, ising_data.spins, attrs=attrs)
    return path


def test_cli_writes_outputs_and_refuses_overwrite(data_file, tmp_path, capsys):
    output = tmp_path / "out"
    argv = [
        str(data_file),
        "-o",
        str(output),
        "--compare",
        "ising-j",
        "ising-j-j2",
        "--warmup",
        "300",
        "--samples",
        "300",
        "--ppc-draws",
        "2",
        "--ppc-configs",
        str(N_CONFIGS),
        "--seed",
        "1",
    ]
    assert main(["--no-progress", "couplings", *argv]) == 0
    for name in (
        "posterior.csv",
        "posterior.json",
        "comparison.csv",
        "comparison.json",
        "ppc.png",
        "trace.png",
        "couplings.json",
    ):
        assert (output / name).stat().st_size > 0, name
    assert "J+J2" in (output / "comparison.csv").read_text()

    before = (output / "posterior.csv").read_bytes()
    capsys.readouterr()
    assert main(["--no-progress", "couplings", *argv]) == 2
    assert "--force" in capsys.readouterr().err
    assert (output / "posterior.csv").read_bytes() == before


def test_cli_rejects_model_of_other_data(data_file, tmp_path):
    with pytest.raises(ValueError, match="--model potts does not match"):
        run_couplings(_parse([str(data_file), "-o", str(tmp_path), "--model", "potts"]))


def test_cli_dcl_needs_model_dir(data_file, tmp_path):
    argv = [str(data_file), "-o", str(tmp_path), "--likelihood", "dcl"]
    with pytest.raises(ValueError, match="--model-dir"):
        run_couplings(_parse(argv))
