"""Energy networks for q-state sites and for one disordered instance.

Every local quantity (site and bond energy changes) is checked against full
evaluations of the network, and the networks set to a known Hamiltonian are
checked against the true energies of :mod:`dcl_prob.hamiltonians`. Network
calls go through ``eqx.filter_jit``: compiling one program is much faster than
dispatching every operation on its own.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob.evaluation import (
    bond_energy_changes,
    effective_pair_couplings,
    potts_energy_network,
    spin_glass_energy_network,
)
from dcl_prob.hamiltonians import EdwardsAndersonModel, PottsModel
from dcl_prob.nn.ednn import ExtensiveEnergy, fix_energy_offset
from dcl_prob.objectives import pseudo_likelihood_loss

Q = 3
L = 4
B = 2  # configurations per call; one shape keeps the compilations few
HIDDEN = (16,)
OFFSETS = ((0, 1), (1, 0))


def random_states(seed, shape, n_states=Q):
    rng = np.random.default_rng(seed)
    values = [-1, 1] if n_states == 2 else np.arange(n_states)
    return jnp.asarray(rng.choice(values, shape), jnp.int8)


def random_network(seed, scale=0.3, hidden=HIDDEN, **options):
    """An energy network whose parameters, except the offset, are drawn from
    N(0, scale) with NumPy; the structure comes from ``eqx.filter_eval_shape``,
    so no initialisation is compiled."""
    rng = np.random.default_rng(seed)
    shapes = eqx.filter_eval_shape(
        lambda: ExtensiveEnergy(hidden=hidden, key=jax.random.key(0), **options)
    )
    leaves, tree = jax.tree.flatten(shapes)
    leaves = [
        jnp.asarray(scale * rng.standard_normal(x.shape), x.dtype) for x in leaves
    ]
    net = jax.tree.unflatten(tree, leaves)
    return eqx.tree_at(lambda e: e.offset, net, jnp.zeros(()))


energy_of = eqx.filter_jit(lambda net, s: net(s))
site_changes = eqx.filter_jit(lambda net, s: net.site_energy_changes(s))
bond_changes = eqx.filter_jit(bond_energy_changes)
flip_changes = eqx.filter_jit(lambda net, s: net.flip_energy_changes(s))


NETWORK_OPTIONS = {
    "one_hot": {"n_states": Q},
    "colour_symmetric": {"n_states": Q, "colour_symmetric": True},
    "bonds_field": {"bond_couplings": L, "z2": False},
    "spins": {},
}


@pytest.fixture(scope="module")
def networks():
    """Energy networks with random parameters, by the names of NETWORK_OPTIONS."""
    return {
        name: random_network(100 + k, **options)
        for k, (name, options) in enumerate(NETWORK_OPTIONS.items())
    }


def full_site_changes(net, s):
    """``E(s with s_i = v) - E(s)`` by full evaluation, ``(B, L, L, n_states)``."""
    values = net.state_values
    B, size = s.shape[0], s.shape[-1]
    flat = s.reshape(B, -1)
    trial = jnp.stack(
        [flat.at[:, k].set(v) for k in range(size * size) for v in values]
    ).reshape(-1, B, size, size)
    changes = np.asarray(energy_of(net, trial) - energy_of(net, s)[None])  # (N q, B)
    return changes.T.reshape(B, size, size, values.size)


@pytest.mark.parametrize("name", ["one_hot", "colour_symmetric", "bonds_field"])
def test_site_energy_changes_match_full_evaluation(networks, name):
    net = networks[name]
    s = random_states(1, (B, L, L), net.n_states)
    local = np.asarray(site_changes(net, s))
    assert local.shape == (2, L, L, net.n_states)
    np.testing.assert_allclose(local, full_site_changes(net, s), atol=2e-5)


@pytest.mark.parametrize("name", ["one_hot", "bonds_field"])
def test_site_energy_change_zero_at_current_value(networks, name):
    net = networks[name]
    s = random_states(2, (B, L, L), net.n_states)
    local = np.asarray(site_changes(net, s))
    index = np.asarray(s) if net.n_states > 2 else (np.asarray(s) + 1) // 2
    current = np.take_along_axis(local, index[..., None].astype(int), axis=-1)
    assert np.all(current == 0.0)


@pytest.mark.parametrize("name", ["spins", "bonds_field"])
def test_site_energy_changes_contain_flips(networks, name):
    net = networks[name]
    s = random_states(3, (B, L, L), 2)
    changes = np.asarray(site_changes(net, s))
    other = np.where(np.asarray(s) > 0, changes[..., 0], changes[..., 1])
    np.testing.assert_allclose(other, flip_changes(net, s), atol=1e-5)


@pytest.mark.parametrize("name", ["one_hot", "bonds_field"])
def test_bond_energy_changes_match_full_evaluation(networks, name):
    net = networks[name]
    s = random_states(4, (B, L, L), net.n_states)
    tables = np.asarray(bond_changes(net, s))
    values = net.state_values
    assert tables.shape == (B, 2, L, L, values.size, values.size)
    trial, where = [], []
    for d, (di, dj) in enumerate(OFFSETS):
        for i in range(L):
            for j in range(L):
                for x, vx in enumerate(values):
                    for y, vy in enumerate(values):
                        changed = np.array(s)
                        changed[:, i, j] = vx
                        changed[:, (i + di) % L, (j + dj) % L] = vy
                        trial.append(changed)
                        where.append((d, i, j, x, y))
    full = energy_of(net, jnp.asarray(np.stack(trial))) - energy_of(net, s)
    expected = np.zeros(tables.shape, np.float32)
    expected[(slice(None),) + tuple(np.array(where).T)] = np.asarray(full).T
    np.testing.assert_allclose(tables, expected, atol=2e-5)


@pytest.mark.parametrize("colour_symmetric", [False, True])
def test_potts_network_equals_true_energy(colour_symmetric):
    net = potts_energy_network(Q, 1.3, colour_symmetric=colour_symmetric, hidden=HIDDEN)
    s = random_states(5, (B, L, L))
    true = jax.jit(PottsModel(Q, 1.3).energy)(s)
    np.testing.assert_allclose(energy_of(net, s), true, atol=1e-4)


def test_potts_site_changes_equal_true_site_energies():
    net = potts_energy_network(Q, 1.0, hidden=HIDDEN)
    s = random_states(6, (B, L, L))
    true = np.asarray(jax.jit(PottsModel(Q).site_energies)(s))  # (B, L, L, q)
    current = np.take_along_axis(true, np.asarray(s)[..., None].astype(int), -1)
    np.testing.assert_allclose(site_changes(net, s), true - current, atol=1e-5)


def test_q_state_energy_is_extensive(networks):
    net = networks["one_hot"]
    s = random_states(7, (B, L, L))
    tiled = jnp.tile(s, (1, 2, 2))
    np.testing.assert_allclose(
        energy_of(net, tiled), 4 * energy_of(net, s), rtol=1e-5, atol=1e-4
    )


def test_colour_symmetric_energy_is_invariant(networks):
    s = random_states(8, (B, L, L))
    permuted = jnp.asarray([2, 0, 1], jnp.int8)[s.astype(jnp.int32)]
    symmetric, plain = networks["colour_symmetric"], networks["one_hot"]
    np.testing.assert_allclose(
        energy_of(symmetric, permuted), energy_of(symmetric, s), atol=1e-5
    )
    assert not np.allclose(energy_of(plain, permuted), energy_of(plain, s), atol=1e-3)


@pytest.mark.parametrize("colour_symmetric", [False, True])
def test_offset_is_exact_mean_without_perceptron(colour_symmetric):
    # 3 x 3 tiles: all 3**9 tile configurations can be enumerated.
    net = random_network(
        9,
        focus=1,
        context=1,
        hidden=(),
        n_states=Q,
        colour_symmetric=colour_symmetric,
    )
    net = fix_energy_offset(net)
    index = np.arange(Q**9)[:, None]
    tiles = ((index // Q ** np.arange(9)) % Q).astype(np.float32)
    mean = float(jnp.mean(eqx.filter_jit(net.tile_energy)(jnp.asarray(tiles))))
    assert abs(mean) < 1e-5


def test_offset_makes_random_mean_zero_q_states(networks):
    net = networks["one_hot"]
    # A constant added to the perceptron must be removed by the offset.
    last_weight, last_bias = net.layers[-1]
    shifted = eqx.tree_at(lambda e: e.layers[-1], net, (last_weight, last_bias + 5.0))
    shifted = fix_energy_offset(shifted)
    energies = np.asarray(energy_of(shifted, random_states(10, (20000, L, L))))
    # Mean over 20000 random lattices; the bound is 5 standard errors. The
    # estimated perceptron mean (2**16 tiles) adds an error about 8 times
    # smaller than one standard error.
    assert abs(energies.mean()) < 5 * energies.std() / math.sqrt(energies.size)


def test_bond_network_equals_spin_glass_energy():
    model = EdwardsAndersonModel.random(L, seed=0)
    net = spin_glass_energy_network(model.bonds, hidden=HIDDEN)
    s = random_states(11, (B, L, L), 2)
    np.testing.assert_allclose(energy_of(net, s), jax.jit(model.energy)(s), atol=1e-4)
    field = np.asarray(jax.jit(model.local_field)(s))
    true_flips = 2.0 * np.asarray(s, np.float32) * field
    np.testing.assert_allclose(flip_changes(net, s), true_flips, atol=1e-4)
    assert float(fix_energy_offset(net).offset) == pytest.approx(0.0, abs=1e-6)


def test_bond_energy_rejects_other_size(networks):
    with pytest.raises(ValueError, match="L=8 is invalid.*L=4"):
        energy_of(networks["bonds_field"], random_states(0, (B, 8, 8), 2))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_states": 3, "z2": True}, "z2=True is invalid for 3 states"),
        ({"colour_symmetric": True}, "colour_symmetric=True is invalid for spins"),
        ({"n_states": 3, "bond_couplings": 4}, "bond_couplings=4 is invalid"),
        ({"context": 0, "bond_couplings": 4}, "context >= 1"),
        ({"n_states": 1}, "n_states=1 is invalid"),
        ({"bond_couplings": 5}, "multiple of 2"),
    ],
)
def test_energy_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ExtensiveEnergy(key=jax.random.key(0), **options)


def test_flip_changes_reject_q_states(networks):
    with pytest.raises(ValueError, match="site_energy_changes"):
        flip_changes(networks["one_hot"], random_states(0, (B, L, L)))


def test_effective_couplings_of_spin_glass_network():
    model = EdwardsAndersonModel.random(L, seed=3)
    s = random_states(12, (3, L, L), 2)
    couplings = effective_pair_couplings(
        spin_glass_energy_network(model.bonds, hidden=HIDDEN), s
    )
    np.testing.assert_allclose(couplings, model.bonds, atol=1e-5)


@pytest.mark.parametrize("colour_symmetric", [False, True])
def test_effective_couplings_of_potts_network(colour_symmetric):
    net = potts_energy_network(Q, 1.3, colour_symmetric=colour_symmetric, hidden=HIDDEN)
    if not colour_symmetric:
        # A random field changes single-site terms only, which must cancel.
        rng = np.random.default_rng(14)
        field = jnp.asarray(rng.standard_normal(net.field_weight.shape), jnp.float32)
        net = eqx.tree_at(lambda e: e.field_weight, net, field)
    s = random_states(15, (B, L, L))
    np.testing.assert_allclose(effective_pair_couplings(net, s), 1.3, atol=1e-5)


def test_pseudo_likelihood_equals_true_conditionals():
    T = 1.7
    s = random_states(16, (B, L, L))
    loss_fn = eqx.filter_jit(pseudo_likelihood_loss)
    loss = float(loss_fn(potts_energy_network(Q, 1.0, hidden=HIDDEN), s, T))
    site_energies = np.asarray(jax.jit(PottsModel(Q).site_energies)(s), np.float64)
    log_p = -site_energies / T
    log_p -= np.log(np.sum(np.exp(log_p), axis=-1, keepdims=True))
    current = np.take_along_axis(log_p, np.asarray(s)[..., None].astype(int), -1)
    assert loss == pytest.approx(-current.mean(), rel=1e-5)
