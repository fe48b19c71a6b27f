"""The autoregressive distribution and the extensive energy network.

Statistical tests use fixed seeds; their failure rates, if the code is right,
are stated where they are made.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dcl_prob.exact import all_configurations
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.nn.ednn import ExtensiveEnergy, fix_energy_offset

L3 = 3


def random_spins(key, shape):
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1, -1).astype(jnp.int8)


def sharpened(net: AutoregressiveGRU, scale: float = 3.0) -> AutoregressiveGRU:
    """Return the network with larger weights, so that q is far from uniform."""
    keys = jax.random.split(jax.random.key(7), 2)
    net = eqx.tree_at(
        lambda n: n.output_weight,
        net,
        scale * jax.random.normal(keys[0], net.output_weight.shape),
    )
    return eqx.tree_at(
        lambda n: n.site_output_bias,
        net,
        jax.random.normal(keys[1], net.site_output_bias.shape),
    )


def pooled_chisquare_p_value(observed: np.ndarray, expected: np.ndarray) -> float:
    """Return the Pearson chi-square p-value, pooling states expected below 5."""
    keep = expected >= 5
    observed_kept = np.append(observed[keep], observed[~keep].sum())
    expected_kept = np.append(expected[keep], expected[~keep].sum())
    if expected_kept[-1] == 0:
        observed_kept, expected_kept = observed_kept[:-1], expected_kept[:-1]
    _, p_value = stats.chisquare(observed_kept, expected_kept)
    return p_value


@pytest.fixture(scope="module")
def q3():
    return sharpened(AutoregressiveGRU(L3, 16, key=jax.random.key(0)))


@pytest.mark.parametrize("z2", [False, True])
def test_log_prob_normalized_3x3(q3, z2):
    dist = AutoregressiveSpins(q3, z2=z2)
    configs = dist.enumerate_support()
    assert configs.shape == (512, L3, L3)
    total = float(jnp.exp(jax.scipy.special.logsumexp(dist.log_prob(configs))))
    assert abs(total - 1.0) < 1e-5


def test_enumerate_support_covers_all_states(q3):
    configs = np.asarray(AutoregressiveSpins(q3).enumerate_support())
    assert len({c.tobytes() for c in configs}) == 512
    assert set(np.unique(configs)) == {-1, 1}


@pytest.mark.parametrize("z2", [False, True])
def test_sample_frequencies_match_log_prob(q3, z2):
    # Pearson chi-square over the 512 states with 200k samples. The test fails
    # with probability 1e-4 when sampling is exact (p-value threshold).
    dist = AutoregressiveSpins(q3, z2=z2)
    configs = dist.enumerate_support()
    probs = np.exp(np.asarray(dist.log_prob(configs), np.float64))
    probs /= probs.sum()
    n = 200_000
    samples = np.asarray(dist.sample(jax.random.key(11), (n,)))
    assert samples.dtype == np.int8
    bits = (samples.reshape(n, -1) == -1).astype(np.int64)
    index = bits @ (1 << np.arange(L3 * L3))
    observed = np.bincount(index, minlength=512)
    expected = n * probs
    assert pooled_chisquare_p_value(observed, expected) > 1e-4


def test_log_prob_validation_rejects_zero_one(q3):
    dist = AutoregressiveSpins(q3, validate_args=True)
    with pytest.raises(ValueError, match="2 \\* x - 1"):
        dist.log_prob(jnp.zeros((L3, L3), jnp.int8))


def test_log_prob_batch_shape(q3):
    dist = AutoregressiveSpins(q3)
    values = random_spins(jax.random.key(2), (2, 5, L3, L3))
    assert dist.log_prob(values).shape == (2, 5)
    assert dist.event_shape == (L3, L3)
    assert dist.batch_shape == ()


@pytest.fixture(scope="module")
def energy_net():
    """A random energy network with a non-trivial pair part, with and without Z2."""
    nets = {}
    for z2 in (True, False):
        net = ExtensiveEnergy(z2=z2, key=jax.random.key(3))
        pair = 0.3 * jax.random.normal(jax.random.key(4), net.pair_weight.shape)
        nets[z2] = eqx.tree_at(lambda e: e.pair_weight, net, pair)
    return nets


@pytest.mark.parametrize("z2", [True, False])
def test_energy_tiled_2x2_is_four_times(energy_net, z2):
    s = random_spins(jax.random.key(5), (3, 8, 8))
    tiled = jnp.tile(s, (1, 2, 2))
    np.testing.assert_allclose(energy_net[z2](tiled), 4 * energy_net[z2](s), rtol=1e-5)


def test_energy_z2_symmetric(energy_net):
    s = random_spins(jax.random.key(6), (3, 8, 8))
    np.testing.assert_allclose(energy_net[True](-s), energy_net[True](s), rtol=1e-5)
    assert not np.allclose(energy_net[False](-s), energy_net[False](s), rtol=1e-3)


@pytest.mark.parametrize("z2", [True, False])
def test_flip_energy_changes_match_full_evaluation(energy_net, z2):
    net = energy_net[z2]
    s = random_spins(jax.random.key(8), (2, 8, 8))
    local = np.asarray(net.flip_energy_changes(s))
    flat = s.reshape(2, -1)
    flipped = jax.vmap(lambda k: flat.at[:, k].multiply(-1))(jnp.arange(64))
    full = np.asarray(net(flipped.reshape(64, 2, 8, 8)) - net(s)).T.reshape(2, 8, 8)
    np.testing.assert_allclose(local, full, atol=2e-4, rtol=1e-5)


def test_energy_rejects_size_not_multiple_of_focus(energy_net):
    with pytest.raises(ValueError, match="multiple of 2"):
        energy_net[True](random_spins(jax.random.key(0), (1, 5, 5)))


def test_offset_makes_random_mean_zero(energy_net):
    net = fix_energy_offset(energy_net[True])
    # A constant added to the tile perceptron must be removed by the offset.
    last_weight, last_bias = net.layers[-1]
    shifted = eqx.tree_at(lambda e: e.layers[-1], net, (last_weight, last_bias + 5.0))
    shifted = fix_energy_offset(shifted)
    s = random_spins(jax.random.key(9), (20000, 4, 4))
    energies = np.asarray(shifted(s))
    # Mean over 20000 random lattices; the bound is 5 standard errors.
    assert abs(energies.mean()) < 5 * energies.std() / math.sqrt(energies.size)


def test_pair_part_represents_ising():
    from dcl_prob.evaluation import ising_energy_network

    s = random_spins(jax.random.key(10), (4, 8, 8))
    np.testing.assert_allclose(
        ising_energy_network(1.0)(s), IsingModel().energy(s), atol=1e-4
    )


def test_all_configurations_compatible_with_enumerate_support(q3):
    ours = {
        c.tobytes() for c in np.asarray(AutoregressiveSpins(q3).enumerate_support())
    }
    exact = {c.tobytes() for c in all_configurations((L3, L3))}
    assert ours == exact


# Categorical conditionals for Potts states 0..q-1 (q = 3).

Q = 3


@pytest.fixture(scope="module")
def potts_q():
    """A sharpened q = 3 network on the 2 x 2 torus (81 configurations)."""
    return sharpened(AutoregressiveGRU(2, 8, key=jax.random.key(3), n_states=Q))


@pytest.mark.parametrize("colour_symmetric", [False, True])
def test_potts_log_prob_normalized(colour_symmetric):
    net = sharpened(AutoregressiveGRU(L3, 8, key=jax.random.key(4), n_states=Q))
    dist = AutoregressiveSpins(net, colour_symmetric=colour_symmetric)
    configs = dist.enumerate_support()
    assert configs.shape == (Q ** (L3 * L3), L3, L3)
    assert set(np.unique(np.asarray(configs))) == {0, 1, 2}
    total = float(jnp.exp(jax.scipy.special.logsumexp(dist.log_prob(configs))))
    assert abs(total - 1.0) < 1e-5


@pytest.mark.parametrize("colour_symmetric", [False, True])
def test_potts_sample_frequencies_match_log_prob(potts_q, colour_symmetric):
    # Pearson chi-square over the 81 states with 100k samples; fails with
    # probability 1e-4 when sampling is exact (p-value threshold).
    dist = AutoregressiveSpins(potts_q, colour_symmetric=colour_symmetric)
    configs = dist.enumerate_support()
    probs = np.exp(np.asarray(dist.log_prob(configs), np.float64))
    probs /= probs.sum()
    n = 100_000
    samples = np.asarray(dist.sample(jax.random.key(12), (n,)))
    assert samples.dtype == np.int8
    index = samples.reshape(n, -1).astype(np.int64) @ (Q ** np.arange(4))
    observed = np.bincount(index, minlength=Q**4)
    expected = n * probs
    assert pooled_chisquare_p_value(observed, expected) > 1e-4


def test_potts_colour_symmetric_is_invariant(potts_q):
    dist = AutoregressiveSpins(potts_q, colour_symmetric=True)
    configs = dist.enumerate_support()
    shifted = (configs + 1) % Q
    swapped = jnp.where(configs == 0, 1, jnp.where(configs == 1, 0, configs))
    for permuted in (shifted, swapped):
        np.testing.assert_allclose(
            dist.log_prob(permuted), dist.log_prob(configs), atol=1e-5
        )
    plain = AutoregressiveSpins(potts_q).log_prob(configs)
    assert float(jnp.max(jnp.abs(plain - dist.log_prob(configs)))) > 0.1


def test_potts_conditioned_q_is_normalized(potts_q):
    net = potts_q.with_temperature_input(key=jax.random.key(5))
    net = eqx.tree_at(
        lambda n: n.beta_output_weight,
        net,
        jax.random.normal(jax.random.key(6), net.beta_output_weight.shape),
    )
    configs = AutoregressiveSpins(potts_q).enumerate_support()
    for T in (0.5, 2.0):
        log_q = AutoregressiveSpins(net.at_temperature(T)).log_prob(configs)
        total = float(jnp.exp(jax.scipy.special.logsumexp(log_q)))
        assert abs(total - 1.0) < 1e-5


def test_potts_validation_and_symmetry_options(potts_q, q3):
    dist = AutoregressiveSpins(potts_q, validate_args=True)
    with pytest.raises(ValueError, match="Potts states 0..2"):
        dist.log_prob(jnp.full((2, 2), 3, jnp.int8))
    with pytest.raises(ValueError, match="colour_symmetric=True"):
        AutoregressiveSpins(potts_q, z2=True)
    with pytest.raises(ValueError, match="z2=True"):
        AutoregressiveSpins(q3, colour_symmetric=True)
    with pytest.raises(ValueError, match="n_states"):
        AutoregressiveGRU(2, 4, key=jax.random.key(0), n_states=1)
