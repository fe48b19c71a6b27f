"""Exactness of every sampler against enumeration of the 3 x 3 Ising model.

Each sampler runs many independent chains from uniformly random starts at
T = 1.0, 2.269 and 5.0 and keeps the final state of each chain. A G-test
compares the visit counts of the 512 states with the exact Boltzmann
probabilities. States whose expected count is below 5 are pooled into one
bin (merged into the smallest other bin if the pool itself expects fewer
than 5), so that the chi-square approximation holds. A test fails when the
p-value is below 1e-4, so under the null hypothesis (an exact sampler whose
chains have equilibrated) each test fails with probability at most about
1e-4. The bound is approximate because the G statistic is chi-square
distributed only asymptotically. The seeds are fixed, so every run gives the
same outcome.

Why the samples are independent and equilibrated: every chain has its own
start and keys, and each contributes exactly one state, so the counts are
multinomial. At T = 1.0 local moves almost never take the 3 x 3 lattice from
one sign of the magnetization to the other (N = 9 is odd, so the sign is
never zero). That mode does not matter here: the uniform start and every
kernel commute with the global flip s -> -s (h = 0 and a Z2-symmetric
energy), so the law of each chain stays Z2-symmetric at all times and gives
each sign exactly the probability 1/2 that the Boltzmann distribution gives
it. What is left to relax is the distribution within each sign, which
mixes within a few sweeps. In a trial with 32768 chains per temperature and
20 steps every sampler passed (tile-local with the fix described at
TILE_LOCAL_CYCLE), and the tests run 40 steps.
"""

from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dcl_prob.evaluation import ising_energy_network
from dcl_prob.exact import all_configurations, boltzmann_probabilities
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.samplers import checkerboard, single_site, tile_local
from dcl_prob.samplers.replica_exchange import (
    ReplicaExchangeInfo,
    ReplicaExchangeState,
    replica_exchange,
)
from dcl_prob.samplers.wolff import init as wolff_init
from dcl_prob.samplers.wolff import wolff

MODEL = IsingModel(J=1.0, h=0.0)
L = 3
TEMPERATURES = (1.0, 2.269, 5.0)
# At T = 1.0 the states other than the two ground states have a total
# probability of 0.32%, so 4096 chains expect 13 of them. Their pooled bin
# then forms a bin of its own, and chains stuck in excited states raise its count.
N_CHAINS = 4096
N_STEPS = 40
P_VALUE_THRESHOLD = 1e-4
MIN_EXPECTED_COUNT = 5.0


@cache
def ising_network():
    """The 3 x 3-tile network that equals the Ising energy."""
    # Built eagerly even when first called under jit, so that the cache
    # contains arrays and not tracers.
    with jax.ensure_compile_time_eval():
        return ising_energy_network(MODEL.J, focus=1, context=1)


def single_site_kernel(rng_key, state, temperature):
    """One sweep of the public builder, at a traced temperature."""

    def logdensity_fn(spins):
        return -MODEL.energy(spins) / temperature

    algorithm = single_site.single_site_metropolis(logdensity_fn)
    state = single_site.init(state.position, logdensity_fn)
    return single_site.sweep(rng_key, state, algorithm.step)


def tile_kernel(rng_key, state, temperature):
    return tile_local.build_kernel(ising_network(), L)(
        rng_key, state, 1.0 / temperature
    )


# name -> (init(spins) -> state, kernel(rng_key, state, temperature), spins of
# a state). The checkerboard and Wolff kernels go through the public
# builders, which accept a traced temperature.
SAMPLERS = {
    "checkerboard_metropolis": (
        lambda spins: checkerboard.init(spins, MODEL),
        lambda key, state, T: checkerboard.checkerboard_metropolis(MODEL, T).step(
            key, state
        ),
        lambda state: state.spins,
    ),
    "checkerboard_heat_bath": (
        lambda spins: checkerboard.init(spins, MODEL),
        lambda key, state, T: checkerboard.checkerboard_heat_bath(MODEL, T).step(
            key, state
        ),
        lambda state: state.spins,
    ),
    "wolff": (
        lambda spins: wolff_init(spins, MODEL),
        lambda key, state, T: wolff(MODEL, T).step(key, state),
        lambda state: state.spins,
    ),
    "single_site_rmh": (
        lambda spins: single_site.init(spins, lambda s: -MODEL.energy(s)),
        single_site_kernel,
        lambda state: state.position,
    ),
    "tile_local": (
        lambda spins: tile_local.init(spins, ising_network()),
        tile_kernel,
        lambda state: state.spins,
    ),
}


def random_spins(key, shape):
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1, -1).astype(jnp.int8)


@partial(jax.jit, static_argnames=("sampler", "n_chains"))
def run_independent_chains(key, temperatures, *, sampler, n_chains):
    """Final spins ``(n_temperatures, n_chains, L, L)`` of independent chains.

    The temperature is a traced, vmapped argument, so one compilation serves
    every temperature.
    """
    init, kernel, spins_of = SAMPLERS[sampler]
    n_total = temperatures.shape[0] * n_chains
    chain_temperatures = jnp.repeat(temperatures, n_chains)
    init_key, run_key = jax.random.split(key)
    states = jax.vmap(init)(random_spins(init_key, (n_total, L, L)))

    def one_step(states, step_key):
        keys = jax.random.split(step_key, n_total)
        states, _ = jax.vmap(kernel)(keys, states, chain_temperatures)
        return states, None

    states, _ = jax.lax.scan(one_step, states, jax.random.split(run_key, N_STEPS))
    return spins_of(states).reshape(temperatures.shape[0], n_chains, L, L)


@cache
def final_spins(sampler):
    seed = sorted(SAMPLERS).index(sampler)
    temperatures = jnp.asarray(TEMPERATURES, jnp.float32)
    spins = run_independent_chains(
        jax.random.key(seed), temperatures, sampler=sampler, n_chains=N_CHAINS
    )
    return np.asarray(spins)


@cache
def replica_exchange_spins():
    """Final spins ``(N_CHAINS, n_temperatures, L, L)`` of independent
    replica exchange chains over the ladder TEMPERATURES."""
    algorithm = replica_exchange(
        checkerboard.build_kernel(MODEL),
        lambda spins: checkerboard.init(spins, MODEL),
        lambda state: state.energy,
        TEMPERATURES,
    )

    @jax.jit
    def run(key):
        init_key, run_key = jax.random.split(key)
        shape = (N_CHAINS, len(TEMPERATURES), L, L)
        states = jax.vmap(algorithm.init)(random_spins(init_key, shape))

        def one_step(states, step_key):
            keys = jax.random.split(step_key, N_CHAINS)
            states, info = jax.vmap(algorithm.step)(keys, states)
            return states, info.swap_acceptance_rate

        states, swap_rates = jax.lax.scan(
            one_step, states, jax.random.split(run_key, N_STEPS)
        )
        return states.replicas.spins, jnp.mean(swap_rates, axis=(0, 1))

    spins, swap_rates = run(jax.random.key(100))
    return np.asarray(spins), np.asarray(swap_rates)


def state_index(spins: np.ndarray) -> np.ndarray:
    """Index of each configuration in the order of ``all_configurations``."""
    down = (spins.reshape(spins.shape[0], -1) < 0).astype(np.int64)
    n_sites = down.shape[1]
    return down @ (1 << np.arange(n_sites - 1, -1, -1))


def g_test_p_value(spins: np.ndarray, temperature: float) -> float:
    """G-test p-value of the visit counts of ``spins`` against Boltzmann."""
    _, probabilities = boltzmann_probabilities(L, temperature, J=MODEL.J, h=MODEL.h)
    counts = np.bincount(state_index(spins), minlength=probabilities.size)
    expected = probabilities * counts.sum()

    low = expected < MIN_EXPECTED_COUNT
    observed_bins = list(counts[~low])
    expected_bins = list(expected[~low])
    if np.any(low):
        pooled_observed = counts[low].sum()
        pooled_expected = expected[low].sum()
        if pooled_expected < MIN_EXPECTED_COUNT:
            # Merge the pooled bin into the smallest of the others.
            smallest = int(np.argmin(expected_bins))
            observed_bins[smallest] += pooled_observed
            expected_bins[smallest] += pooled_expected
        else:
            observed_bins.append(pooled_observed)
            expected_bins.append(pooled_expected)
    result = stats.power_divergence(
        np.asarray(observed_bins, np.float64),
        np.asarray(expected_bins, np.float64),
        lambda_="log-likelihood",
    )
    return float(result.pvalue)


def exactness_cases():
    for sampler in sorted(SAMPLERS):
        for temperature in TEMPERATURES:
            yield pytest.param(sampler, temperature, id=f"{sampler}-T={temperature}")


@pytest.mark.parametrize("sampler, temperature", exactness_cases())
def test_sampler_matches_boltzmann(sampler, temperature):
    spins = final_spins(sampler)[TEMPERATURES.index(temperature)]
    p_value = g_test_p_value(spins, temperature)
    assert p_value > P_VALUE_THRESHOLD, (
        f"{sampler} at T={temperature}: G-test p-value {p_value:.3g}"
    )


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_replica_exchange_matches_boltzmann(temperature):
    spins, _ = replica_exchange_spins()
    p_value = g_test_p_value(spins[:, TEMPERATURES.index(temperature)], temperature)
    assert p_value > P_VALUE_THRESHOLD, (
        f"replica exchange at T={temperature}: G-test p-value {p_value:.3g}"
    )


def test_replica_exchange_swaps_happen():
    # Exactness alone would also hold if no swap were ever accepted.
    _, swap_rates = replica_exchange_spins()
    assert swap_rates.shape == (len(TEMPERATURES) - 1,)
    assert np.all(swap_rates > 0.05), swap_rates


def test_g_test_detects_wrong_temperature():
    # The same samples against the Boltzmann weights of a 10% higher
    # temperature must fail, or the exactness tests above could not fail.
    spins = final_spins("checkerboard_metropolis")[TEMPERATURES.index(2.269)]
    assert g_test_p_value(spins, 2.269 * 1.1) < P_VALUE_THRESHOLD


def test_state_index_matches_enumeration_order():
    configs = all_configurations((L, L))
    np.testing.assert_array_equal(state_index(configs), np.arange(2 ** (L * L)))


# Checks of the pieces that the exactness tests rely on.


def test_ising_network_focus_1_matches_ising():
    configs = jnp.asarray(all_configurations((L, L)))
    np.testing.assert_array_equal(
        np.asarray(ising_network()(configs)), np.asarray(MODEL.energy(configs))
    )


def test_ising_network_rejects_zero_context():
    with pytest.raises(ValueError, match="context=0 are invalid"):
        ising_energy_network(1.0, focus=2, context=0)


@pytest.mark.parametrize("size", range(2, 10))
def test_site_colouring_is_proper(size):
    colours = checkerboard.site_colouring(size)
    assert colours.shape == (size, size)
    assert colours.dtype == np.int8
    for axis in (0, 1):
        assert not np.any(colours == np.roll(colours, 1, axis=axis))
    assert set(np.unique(colours)) == (set(range(2)) if size % 2 == 0 else {0, 1, 2})


def test_checkerboard_rejects_unknown_rule():
    with pytest.raises(ValueError, match="rule='glauber' is invalid"):
        checkerboard.build_kernel(MODEL, rule="glauber")


def test_single_site_keeps_int8_positions():
    algorithm = single_site.single_site_metropolis(lambda s: -MODEL.energy(s) / 2.0)
    state = algorithm.init(jnp.ones((L, L), jnp.int32))
    state, info = jax.jit(partial(single_site.sweep, step_fn=algorithm.step))(
        jax.random.key(0), state
    )
    assert state.position.dtype == jnp.int8
    assert state.position.shape == (L, L)
    assert state.logdensity.dtype == jnp.float32
    assert info.acceptance_rate.dtype == jnp.float32
    assert info.acceptance_rate.shape == ()
    assert info.n_accepted.dtype == jnp.int32
    assert 0 <= int(info.n_accepted) <= L * L


def test_single_site_kernel_recomputes_logdensity():
    # A state made at T = 1 and moved to T = 2, as a replica exchange swap
    # does, must leave the sweep with the log density at T = 2.
    spins = random_spins(jax.random.key(1), (L, L))
    state = single_site.init(spins, lambda s: -MODEL.energy(s))
    kernel = single_site.build_kernel(MODEL.energy)
    state, _ = kernel(jax.random.key(2), state, 2.0)
    expected = -MODEL.energy(state.position) / 2.0
    np.testing.assert_allclose(state.logdensity, expected, rtol=1e-6)


def identity_kernel(rng_key, state, temperature):
    """A local kernel that never moves, to test the swap bookkeeping alone."""
    del rng_key, temperature
    return state, jnp.zeros((), jnp.float32)


def fixed_energy_exchange(temperatures):
    """Replica exchange whose replica states are their own energies."""
    return replica_exchange(
        identity_kernel, lambda x: x, lambda state: state, temperatures
    )


def test_replica_exchange_alternates_pairs():
    # With equal temperatures every proposed swap is accepted.
    algorithm = fixed_energy_exchange([2.0, 2.0, 2.0, 2.0, 2.0])
    energies = jnp.asarray([0.0, 1.0, 2.0, 3.0, 4.0])
    state = algorithm.init(energies)
    assert isinstance(state, ReplicaExchangeState)
    assert state.replica_ids.dtype == jnp.int32

    state, info = algorithm.step(jax.random.key(0), state)
    assert isinstance(info, ReplicaExchangeInfo)
    np.testing.assert_array_equal(info.swap_attempted, [True, False, True, False])
    np.testing.assert_array_equal(info.swap_accepted, [True, False, True, False])
    np.testing.assert_array_equal(info.swap_acceptance_rate, np.ones(4))
    np.testing.assert_array_equal(state.replica_ids, [1, 0, 3, 2, 4])
    np.testing.assert_array_equal(state.replicas, [1.0, 0.0, 3.0, 2.0, 4.0])

    state, info = algorithm.step(jax.random.key(1), state)
    np.testing.assert_array_equal(info.swap_attempted, [False, True, False, True])
    np.testing.assert_array_equal(state.replica_ids, [1, 3, 0, 4, 2])
    np.testing.assert_array_equal(state.replicas, [1.0, 3.0, 0.0, 4.0, 2.0])
    assert int(state.step_count) == 2


def test_replica_exchange_acceptance_probability():
    temperatures = np.array([1.0, 1.5, 2.5])
    energies = np.array([-4.0, -6.0, 3.0])
    algorithm = fixed_energy_exchange(temperatures)
    state = algorithm.init(jnp.asarray(energies, jnp.float32))
    _, info = algorithm.step(jax.random.key(0), state)
    betas = 1.0 / temperatures
    log_ratio = (betas[:-1] - betas[1:]) * (energies[:-1] - energies[1:])
    np.testing.assert_allclose(
        info.swap_acceptance_rate, np.minimum(1.0, np.exp(log_ratio)), rtol=1e-6
    )


def test_replica_exchange_swap_frequency():
    # Pair (0, 1) with acceptance probability exp(-1): over 4000 independent
    # first steps the accepted fraction is within 5 standard errors.
    algorithm = fixed_energy_exchange([1.0, 2.0])
    state = algorithm.init(jnp.asarray([0.0, 2.0]))
    keys = jax.random.split(jax.random.key(3), 4000)
    _, info = jax.jit(jax.vmap(algorithm.step, in_axes=(0, None)))(keys, state)
    probability = np.exp(-1.0)
    standard_error = np.sqrt(probability * (1 - probability) / keys.shape[0])
    accepted = np.mean(np.asarray(info.swap_accepted[:, 0]))
    assert abs(accepted - probability) < 5 * standard_error


@pytest.mark.parametrize(
    "temperatures, match",
    [
        ([], "non-empty 1-D"),
        ([[1.0, 2.0]], "non-empty 1-D"),
        ([1.0, 0.0], "position 1 of the ladder is invalid"),
        ([1.0, float("nan")], "position 1 of the ladder is invalid"),
    ],
)
def test_replica_exchange_rejects_invalid_ladder(temperatures, match):
    with pytest.raises(ValueError, match=match):
        fixed_energy_exchange(temperatures)


def test_replica_exchange_rejects_wrong_replica_count():
    algorithm = fixed_energy_exchange([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="2 positions are invalid"):
        algorithm.init(jnp.zeros(2))
