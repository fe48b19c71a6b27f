"""The tile-aware local kernel and the transfer driver.

The exactness test compares with enumeration of the 4 x 4 lattice. Each
comparison passes within 4 standard errors (ArviZ MCSE over 64 independent
chains), so it fails with probability about 6e-5 if the error bars are right.
The seeds are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob.evaluation import ising_energy_network
from dcl_prob.exact import enumerate_ising
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.samplers import tile_local
from dcl_prob.transfer import transfer

ROW_KEYS = {
    "L",
    "T",
    "e",
    "e_err",
    "abs_m",
    "abs_m_err",
    "c",
    "c_err",
    "chi",
    "chi_err",
    "rhat_max",
    "ess_min",
}


def random_spins(key, shape):
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1, -1).astype(jnp.int8)


@pytest.fixture(scope="module")
def random_energy():
    import equinox as eqx

    net = ExtensiveEnergy(z2=False, key=jax.random.key(0))
    pair = 0.3 * jax.random.normal(jax.random.key(1), net.pair_weight.shape)
    return eqx.tree_at(lambda e: e.pair_weight, net, pair)


def test_group_spacing_keeps_tiles_apart():
    assert tile_local.group_spacing(8, 4) == 4
    assert tile_local.group_spacing(6, 4) == 6
    assert tile_local.group_spacing(10, 4) == 5
    assert tile_local.group_spacing(4, 4) == 4


def test_groups_share_no_tile():
    net = ExtensiveEnergy(key=jax.random.key(0))
    geometry = net.geometry(8)
    spacing = tile_local.group_spacing(8, geometry.tile_width)
    for sites in tile_local._groups(8, spacing):
        tiles = geometry.site_tiles[sites].ravel()
        assert len(set(tiles.tolist())) == tiles.size


def test_local_update_energy_matches_full_evaluation(random_energy):
    # After sweeps, the cached energy of every chain equals a full evaluation,
    # and the energy change of each accepted flip equals the full difference.
    L = 8
    kernel = jax.jit(tile_local.build_kernel(random_energy, L))
    spins = random_spins(jax.random.key(2), (L, L))
    state = tile_local.init(spins, random_energy)
    for step_key in jax.random.split(jax.random.key(3), 5):
        previous = state
        state, info = kernel(step_key, state, 0.4)
        assert 0.0 < float(info.acceptance_rate) < 1.0
        full_new = float(random_energy(state.spins))
        full_old = float(random_energy(previous.spins))
        assert abs(float(state.energy) - full_new) < 1e-3
        assert (
            abs((float(state.energy) - float(previous.energy)) - (full_new - full_old))
            < 1e-3
        )


def test_group_update_delta_matches_two_full_evaluations(random_energy):
    L = 8
    geometry = random_energy.geometry(L)
    state = tile_local.init(random_spins(jax.random.key(4), (L, L)), random_energy)
    sites = jnp.asarray(tile_local._groups(L, 4)[5])
    # beta = 0 accepts every flip, so each site of the group is flipped.
    new_state, accepted = tile_local._group_update(
        random_energy, geometry, 0.0, state, sites, jax.random.key(5)
    )
    assert int(accepted) == sites.size
    for site in np.asarray(sites)[:4]:
        alone = state.spins.reshape(-1).at[site].multiply(-1).reshape(L, L)
        full_delta = float(random_energy(alone) - random_energy(state.spins))
        i, j = divmod(int(site), L)
        local = float(random_energy.flip_energy_changes(state.spins[None])[0, i, j])
        assert abs(local - full_delta) < 1e-3
    assert abs(float(new_state.energy) - float(random_energy(new_state.spins))) < 1e-3


EXACT_TEMPERATURES = [1.5, 2.269, 3.0]


@pytest.fixture(scope="module")
def exact_rows():
    """Transfer of the exact Ising energy on 4 x 4, all temperatures in one run."""
    rows = transfer(
        ising_energy_network(1.0),
        EXACT_TEMPERATURES,
        4,
        key=jax.random.key(6),
        n_chains=64,
        n_sweeps=3000,
        burn_in=200,
        progress=False,
    )
    return {row["T"]: row for row in rows}


@pytest.mark.parametrize("T", EXACT_TEMPERATURES)
def test_tile_kernel_exact_on_4x4(exact_rows, T):
    row = exact_rows[T]
    reference = enumerate_ising(4, T)
    assert abs(row["e"] - reference.energy) < 4 * row["e_err"]
    assert abs(row["abs_m"] - reference.abs_m) < 4 * row["abs_m_err"]
    assert row["e_err"] < 0.004
    assert row["abs_m_err"] < 0.004


def test_transfer_rows_schema():
    rows = transfer(
        ising_energy_network(1.0),
        [2.0, 3.0],
        8,
        key=jax.random.key(7),
        n_chains=4,
        n_sweeps=100,
        burn_in=100,
        progress=False,
    )
    assert [row["T"] for row in rows] == [2.0, 3.0]
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert all(np.isfinite(row[key]) for key in ROW_KEYS)


@pytest.mark.parametrize("bad", [[0.0], [-1.0], [float("nan")], []])
def test_transfer_rejects_bad_temperatures(bad):
    with pytest.raises(ValueError, match="temperature"):
        transfer(ising_energy_network(1.0), bad, 8, key=jax.random.key(0))


def test_transfer_rejects_size_not_multiple_of_focus():
    with pytest.raises(ValueError, match="multiple of 2"):
        transfer(ising_energy_network(1.0), [2.0], 7, key=jax.random.key(0))


def test_transfer_is_deterministic():
    arguments = dict(n_chains=4, n_sweeps=100, burn_in=100, progress=False)
    energy = ising_energy_network(1.0)
    first = transfer(energy, [2.0, 3.0], 8, key=jax.random.key(8), **arguments)
    second = transfer(energy, [2.0, 3.0], 8, key=jax.random.key(8), **arguments)
    assert first == second
