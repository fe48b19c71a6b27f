"""Tile-local sampling and fitting of a 3-state Potts model and a spin glass.

Both models live on the 3 x 3 torus with 3 x 3 tiles (focus 1, context 1), so
the tile-local sampler on the energy networks that equal the true energies is
compared with exact enumeration (3**9 and 2**9 configurations). Each G-test
fails with probability 1e-4 if the sampler is exact (p-value threshold); the
seeds are fixed. The final states of the chains are independent exact
samples, and the fits below learn from them.
"""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dcl_prob.enumeration import enumerate_model
from dcl_prob.evaluation import (
    effective_pair_couplings,
    potts_energy_network,
    spin_glass_energy_network,
    uniform_mean_energy,
)
from dcl_prob.fit import FitConfig, fit
from dcl_prob.fit_config import (
    BOND_ENERGY_LEARNING_RATE,
    check_spins,
    config_for_data,
)
from dcl_prob.hamiltonians import ClockModel, EdwardsAndersonModel, PottsModel
from dcl_prob.model_io import load_model, save_model
from dcl_prob.samplers import tile_local
from dcl_prob.transfer import transfer

L = 3
Q = 3
TEMPERATURE = 1.5
POTTS = PottsModel(Q)
GLASS = EdwardsAndersonModel.random(L, seed=1)
BETA = jnp.float32(1.0 / TEMPERATURE)
N_CHAINS = 4096
N_SWEEPS = jnp.int32(40)
P_VALUE_THRESHOLD = 1e-4
MIN_EXPECTED_COUNT = 5.0
# The log-variance term is left out (weight 0, still evaluated): after so few
# steps q is far from the data, and matching E to it biased the coupling by
# about -10 %, which would hide errors of the pseudo-likelihood.
FIT = FitConfig(
    lv_weight=0.0,
    hidden_size=8,
    q_steps=50,
    focus=1,
    context=1,
    energy_hidden=(8,),
    energy_steps=200,
    energy_learning_rate=1e-2,
    batch_size=128,
    n_q_samples=256,
    chunk_size=50,
)


@eqx.filter_jit
def run_chains(energy, start, key, beta, n_sweeps):
    """Final states of independent tile-local chains from ``start`` ``(n, L, L)``.

    ``beta`` and ``n_sweeps`` are arrays, so one compilation serves all values.
    """
    kernel = tile_local.build_kernel(energy, L)
    states = jax.vmap(lambda s: tile_local.init(s, energy))(start)

    def sweep(step, states):
        keys = jax.random.split(jax.random.fold_in(key, step), start.shape[0])
        states, _ = jax.vmap(kernel, in_axes=(0, 0, None))(keys, states, beta)
        return states

    return jax.lax.fori_loop(0, n_sweeps, sweep, states)


def random_start(energy, seed):
    values = energy.state_values
    start = np.random.default_rng(seed).choice(values, (N_CHAINS, L, L))
    return jnp.asarray(start, jnp.int8)


@pytest.fixture(scope="module")
def potts_energy():
    return potts_energy_network(Q, POTTS.J, focus=1, context=1, hidden=())


@pytest.fixture(scope="module")
def potts_samples(potts_energy):
    start = random_start(potts_energy, 0)
    states = run_chains(potts_energy, start, jax.random.key(0), BETA, N_SWEEPS)
    return np.asarray(states.spins)


@pytest.fixture(scope="module")
def glass_samples():
    energy = spin_glass_energy_network(GLASS.bonds, focus=1, context=1, hidden=())
    start = random_start(energy, 1)
    states = run_chains(energy, start, jax.random.key(1), BETA, N_SWEEPS)
    return np.asarray(states.spins)


def g_test_p_value(sample_bins, probabilities, bins) -> float:
    """G-test p-value of the bin counts of samples against exact probabilities.

    ``bins`` maps every enumerated configuration to a bin; bins expecting fewer
    than MIN_EXPECTED_COUNT samples are pooled.
    """
    n_bins = bins.max() + 1
    expected = np.bincount(bins, probabilities, n_bins) * sample_bins.size
    counts = np.bincount(sample_bins, minlength=n_bins)
    low = expected < MIN_EXPECTED_COUNT
    observed = np.append(counts[~low], counts[low].sum())
    expected = np.append(expected[~low], expected[low].sum())
    result = stats.power_divergence(observed, expected, lambda_="log-likelihood")
    return float(result.pvalue)


def potts_bins(configs: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Bin key of Potts configurations: the energy and the count of each state."""
    counts = np.stack([(configs == a).sum(axis=(-2, -1)) for a in range(Q)], -1)
    return np.concatenate([np.round(energies)[:, None], counts], -1).astype(int)


def test_tile_local_potts_matches_enumeration(potts_samples):
    exact = enumerate_model(POTTS, L, TEMPERATURE)
    sample_energies = np.asarray(jax.jit(POTTS.energy)(jnp.asarray(potts_samples)))
    keys = np.concatenate(
        [
            potts_bins(exact.configs, exact.energies),
            potts_bins(potts_samples, sample_energies),
        ]
    )
    _, bins = np.unique(keys, axis=0, return_inverse=True)
    bins = bins.ravel()
    n_configs = exact.configs.shape[0]
    p_value = g_test_p_value(bins[n_configs:], exact.probabilities, bins[:n_configs])
    assert p_value > P_VALUE_THRESHOLD


def test_tile_local_spin_glass_matches_enumeration(glass_samples):
    exact = enumerate_model(GLASS, L, TEMPERATURE)
    index = {c.tobytes(): k for k, c in enumerate(exact.configs)}
    sample_bins = np.array([index[c.tobytes()] for c in glass_samples])
    bins = np.arange(exact.configs.shape[0])
    assert g_test_p_value(sample_bins, exact.probabilities, bins) > P_VALUE_THRESHOLD


def test_tile_local_proposes_other_states(potts_energy):
    # At beta = 0 a proposal is accepted with probability 1, or 1/2 where
    # dE = 0, so more than half of the sites change in one sweep.
    start = random_start(potts_energy, 2)
    zero, one = jnp.float32(0.0), jnp.int32(1)
    states = run_chains(potts_energy, start, jax.random.key(2), zero, one)
    changed = np.asarray(states.spins != start)
    assert changed.mean() > 0.5
    full = jax.jit(POTTS.energy)(states.spins)
    np.testing.assert_allclose(states.energy, full, atol=1e-4)


@pytest.fixture(scope="module")
def potts_fit(potts_samples):
    config = dataclasses.replace(FIT, n_states=Q, colour_symmetric=True)
    return fit(
        potts_samples, TEMPERATURE, key=jax.random.key(3), config=config, progress=False
    )


@pytest.fixture(scope="module")
def glass_fit(glass_samples):
    config = dataclasses.replace(FIT, energy_kind="bonds")
    return fit(
        glass_samples, TEMPERATURE, key=jax.random.key(4), config=config, progress=False
    )


def test_potts_fit_learns_coupling(potts_fit, potts_samples):
    assert potts_fit.config.n_states == Q
    couplings = effective_pair_couplings(potts_fit.energy, potts_samples[:512])
    # Pseudo-likelihood on 4096 exact samples; the spread of 0.1 is several
    # times the statistical error of a coupling.
    np.testing.assert_allclose(couplings, POTTS.J, atol=0.1)
    assert potts_fit.metrics["valid_nll_per_spin"] < np.log(Q)
    assert np.isfinite(potts_fit.history["energy"][-1]["logvar"])


def test_glass_fit_learns_bond_signs(glass_fit, glass_samples):
    couplings = effective_pair_couplings(glass_fit.energy, glass_samples[:512])
    true = GLASS.bonds
    strong = np.abs(true) > 0.2
    assert np.all(np.sign(couplings[strong]) == np.sign(true[strong]))
    assert np.corrcoef(couplings.ravel(), true.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    "name, samples", [("potts_fit", "potts_samples"), ("glass_fit", "glass_samples")]
)
def test_save_load_round_trip_new_networks(tmp_path, request, name, samples):
    result = request.getfixturevalue(name)
    path = save_model(tmp_path / "model", result)
    saved = json.loads((path / "config.json").read_text())["fit_config"]
    assert saved["n_states"] == result.config.n_states
    assert saved["energy_kind"] == result.config.energy_kind
    loaded = load_model(path)
    assert loaded.config == result.config
    s = jnp.asarray(request.getfixturevalue(samples)[:4])
    energy = eqx.filter_jit(lambda e, s: e(s))
    np.testing.assert_array_equal(energy(loaded.energy, s), energy(result.energy, s))
    log_prob = eqx.filter_jit(lambda d, s: d.log_prob(s))
    np.testing.assert_array_equal(
        log_prob(loaded.distribution(), s), log_prob(result.distribution(), s)
    )


POTTS_DATA = np.array([[[0, 1, 2], [2, 1, 0], [0, 0, 1]]] * 10, np.int8)


@pytest.mark.parametrize(
    "spins, options, message",
    [
        (POTTS_DATA, {}, "not Ising spins -1/\\+1; for Potts states .* n_states=q"),
        (POTTS_DATA + 1, {"n_states": 3}, "values \\[3\\].*pass n_states=4"),
        (2 * (POTTS_DATA % 2) - 1, {"n_states": 3}, "\\[-1\\].*pass n_states=2"),
        (POTTS_DATA, {"n_states": 3, "energy_kind": "bond"}, "energy_kind='bond'"),
        (POTTS_DATA, {"n_states": 3, "energy_kind": "bonds"}, "need Ising spins"),
        (POTTS_DATA, {"n_states": 3, "q_z2": True}, "q_colour_symmetric=True"),
        (POTTS_DATA % 2, {"n_states": None}, "cannot infer n_states"),
        (POTTS_DATA, {"n_states": 1}, "n_states=1 is invalid"),
    ],
)
def test_fit_rejects_states_and_options(spins, options, message):
    config = dataclasses.replace(FIT, **options)
    with pytest.raises(ValueError, match=message):
        fit(spins, 1.0, key=jax.random.key(0), config=config, progress=False)


def test_fit_rejects_colour_symmetry_for_spins():
    spins = 2 * (POTTS_DATA % 2) - 1
    config = dataclasses.replace(FIT, q_colour_symmetric=True)
    with pytest.raises(ValueError, match="q_colour_symmetric=True is invalid"):
        fit(spins, 1.0, key=jax.random.key(0), config=config, progress=False)


def test_n_states_inferred_from_data():
    assert check_spins(POTTS_DATA, None) == 3
    assert check_spins(POTTS_DATA + 3, None) == 6
    assert check_spins(2 * (POTTS_DATA % 2) - 1, None) == 2


def test_config_without_new_fields_reads_defaults():
    values = FitConfig().to_dict()
    for name in ("n_states", "energy_kind", "colour_symmetric", "q_colour_symmetric"):
        values.pop(name)
    config = FitConfig.from_dict(values)
    assert config.n_states == 2
    assert config.energy_kind == "tiles"
    assert not config.colour_symmetric
    assert not config.q_colour_symmetric


TRANSFER_TEMPERATURES = [1.0, 2.0]


def test_transfer_potts_order_parameter_matches_enumeration(potts_energy):
    rows = transfer(
        potts_energy,
        TRANSFER_TEMPERATURES,
        L,
        key=jax.random.key(5),
        n_chains=16,
        n_sweeps=1000,
        burn_in=200,
        progress=False,
    )
    for row in rows:
        exact = enumerate_model(POTTS, L, row["T"])
        assert row["order_parameter"] == "potts"
        # 4.5 standard errors: each comparison fails with probability 7e-6
        # for an exact sampler whose MCSE is right.
        assert abs(row["e"] - exact.energy) < 4.5 * row["e_err"]
        assert abs(row["abs_m"] - exact.order_parameter) < 4.5 * row["abs_m_err"]


def test_transfer_exchange_overlap_matches_enumeration():
    energy = spin_glass_energy_network(GLASS.bonds, focus=1, context=1, hidden=())
    rows = transfer(
        energy,
        TRANSFER_TEMPERATURES,
        L,
        key=jax.random.key(6),
        n_chains=16,
        n_sweeps=1000,
        burn_in=200,
        order_parameter="overlap",
        exchange=True,
        progress=False,
    )
    for row in rows:
        exact = enumerate_model(GLASS, L, row["T"])
        spins = exact.configs.reshape(exact.configs.shape[0], -1).astype(np.float64)
        overlaps = np.abs(spins @ spins.T) / spins.shape[1]
        abs_overlap = exact.probabilities @ overlaps @ exact.probabilities
        assert row["order_parameter"] == "overlap"
        assert row["exchange_ladder_size"] > len(TRANSFER_TEMPERATURES)
        # 4.5 standard errors, as above.
        assert abs(row["e"] - exact.energy) < 4.5 * row["e_err"]
        assert abs(row["abs_m"] - abs_overlap) < 4.5 * row["abs_m_err"]


def test_config_for_data_follows_the_model():
    potts = config_for_data({"model": "potts", "encoding": "potts", "q": 3})
    assert (potts.n_states, potts.colour_symmetric) == (3, True)
    clock = config_for_data({"model": "clock", "encoding": "potts", "q": 4})
    assert (clock.n_states, clock.colour_symmetric) == (4, False)
    glass = config_for_data({"model": "spin-glass", "encoding": "pm1"})
    assert glass.energy_kind == "bonds"
    assert glass.energy_hidden == ()
    assert glass.lv_weight == 0.0
    assert glass.energy_learning_rate == BOND_ENERGY_LEARNING_RATE
    field = config_for_data({"model": "ising", "h": 0.5}, hidden_size=8)
    assert (field.z2, field.hidden_size, field.n_states) == (False, 8, 2)
    chosen = config_for_data({"model": "spin-glass"}, energy_learning_rate=1e-3)
    assert chosen.energy_learning_rate == 1e-3


@pytest.mark.parametrize("model", [POTTS, GLASS, ClockModel(4)])
def test_uniform_mean_energy_matches_enumeration(model):
    energies = enumerate_model(model, L, 1.0).energies
    assert uniform_mean_energy(model) == pytest.approx(np.mean(energies) / L**2)
