"""Exactness of the samplers of the Potts, clock, Ising-NNN and spin-glass
models against enumeration.

The method is that of ``test_samplers_exact.py``. Each case runs 4096
independent chains for each of its (coupling, temperature) pairs from
uniformly random states, and keeps the final state of each chain. A G-test
compares the visit counts of all states with the exact Boltzmann
probabilities of :func:`dcl_prob.exact.enumerate_model`. States whose
expected count is below 5 are merged, in order of decreasing probability,
into consecutive bins of expected count at least 5, so that the chi-square
approximation is valid and states of similar energy share a bin. A test fails
when the p-value is below 1e-4. Under the null hypothesis (an exact sampler
whose chains have equilibrated) each test then fails with probability at
most about 1e-4, and the 15 exactness tests together with at most about
1.5e-3. The seeds are fixed, so every run gives the same outcome.

Why the chains equilibrate in 40 steps: every model here has a global
symmetry (permutations of the Potts states, rotations of the clock, the flip
s -> -s at zero field), and the uniform start and every kernel commute with
it, so the law of each chain stays symmetric and no chain needs to tunnel
between symmetric ordered states. What is left relaxes within a few sweeps,
except in the 3 x 3 spin glass at T = 0.5, where 40 heat-bath sweeps failed
the test (p = 2e-11 in a trial), which is why parallel tempering is tested
there. In trials with three other sets of seeds every case passed (smallest
p-value 0.007), and every case rejected the probabilities of a temperature
10% higher than its first one with p below 0.004. The power checks below use
20% so that they pass with a margin.
"""

from collections.abc import Callable
from functools import cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dcl_prob.exact import configuration_index, enumerate_model
from dcl_prob.hamiltonians import (
    ClockModel,
    EdwardsAndersonModel,
    IsingNNNModel,
    PottsModel,
)
from dcl_prob.samplers import checkerboard
from dcl_prob.samplers.replica_exchange import replica_exchange
from dcl_prob.samplers.swendsen_wang import build_kernel as build_swendsen_wang
from dcl_prob.samplers.swendsen_wang import cluster_labels
from dcl_prob.samplers.swendsen_wang import init as init_swendsen_wang

N_CHAINS = 4096
N_STEPS = 40
P_VALUE_THRESHOLD = 1e-4
MIN_EXPECTED_COUNT = 5.0
# The temperature of the probabilities that the power check rejects, as a
# factor of the sampled temperature.
WRONG_TEMPERATURE_FACTOR = 1.2
SPIN_GLASS = EdwardsAndersonModel.random(3, seed=0)
LADDER = (0.5, 0.9, 1.6)


class Case(NamedTuple):
    # coupling -> model. The coupling is traced in the chain runner, so the
    # runs of one case share one compiled program.
    make_model: Callable
    L: int
    sampler: str  # "heat-bath" or "swendsen-wang"
    runs: tuple  # (coupling, temperature) pairs


def fixed(model):
    return lambda coupling: model


CASES = {
    # T_c of the q = 3 Potts model is 0.995 and of the q = 4 clock model 1.135.
    "potts-heat-bath": Case(
        fixed(PottsModel(q=3)), 3, "heat-bath", ((0.0, 0.8), (0.0, 1.5))
    ),
    "potts-swendsen-wang": Case(
        fixed(PottsModel(q=3)), 3, "swendsen-wang", ((0.0, 0.8), (0.0, 1.5))
    ),
    "clock-heat-bath": Case(
        fixed(ClockModel(q=4)), 3, "heat-bath", ((0.0, 0.8), (0.0, 1.5))
    ),
    # The coupling is J2, with J = 1.
    "nnn-heat-bath": Case(
        lambda J2: IsingNNNModel(J=1.0, J2=J2),
        4,
        "heat-bath",
        ((0.5, 2.5), (0.5, 4.0), (-0.3, 1.5), (-0.3, 3.0)),
    ),
    "spin-glass-heat-bath": Case(
        fixed(SPIN_GLASS), 3, "heat-bath", ((0.0, 1.0), (0.0, 2.0))
    ),
}


def random_states(key, shape, state_values):
    values = jnp.asarray(state_values, dtype=jnp.int8)
    return values[jax.random.randint(key, shape, 0, values.size)]


def sampler_functions(case: Case, coupling):
    """Return ``(init(spins), kernel(key, state, temperature))``."""
    model = case.make_model(coupling)
    if case.sampler == "swendsen-wang":
        return partial(init_swendsen_wang, model=model), build_swendsen_wang(model)
    return (
        partial(checkerboard.init, model=model),
        checkerboard.build_kernel(model, "heat_bath"),
    )


@partial(jax.jit, static_argnames=("name",))
def run_independent_chains(key, couplings, temperatures, *, name):
    """Final states ``(n_runs, N_CHAINS, L, L)`` of independent chains and the
    info of their last step, with leading axes ``(n_runs, N_CHAINS)``."""
    case = CASES[name]
    n_runs = temperatures.shape[0]
    n_total = n_runs * N_CHAINS
    chain_couplings = jnp.repeat(couplings, N_CHAINS)
    chain_temperatures = jnp.repeat(temperatures, N_CHAINS)

    def init_chain(spins, coupling):
        init, _ = sampler_functions(case, coupling)
        return init(spins)

    def step_chain(step_key, state, coupling, temperature):
        _, kernel = sampler_functions(case, coupling)
        return kernel(step_key, state, temperature)

    init_key, run_key = jax.random.split(key)
    state_values = case.make_model(0.0).state_values
    spins = random_states(init_key, (n_total, case.L, case.L), state_values)
    states = jax.vmap(init_chain)(spins, chain_couplings)

    def one_step(states, step_key):
        keys = jax.random.split(step_key, n_total)
        return jax.vmap(step_chain)(keys, states, chain_couplings, chain_temperatures)

    states, info = jax.lax.scan(one_step, states, jax.random.split(run_key, N_STEPS))
    spins = states.spins.reshape(n_runs, N_CHAINS, case.L, case.L)
    last_info = jax.tree.map(lambda leaf: leaf[-1].reshape(n_runs, N_CHAINS), info)
    return spins, last_info


@cache
def final_states(name):
    """Final states ``(n_runs, N_CHAINS, L, L)`` and last-step info of a case."""
    case = CASES[name]
    couplings, temperatures = np.asarray(case.runs, np.float32).T
    seed = sorted(CASES).index(name)
    states, info = run_independent_chains(
        jax.random.key(seed), couplings, temperatures, name=name
    )
    return np.asarray(states), jax.tree.map(np.asarray, info)


@cache
def parallel_tempering_states():
    """Final states ``(N_CHAINS, len(LADDER), 3, 3)`` of independent parallel
    tempering chains of the spin glass, and the mean swap rate of each pair."""
    model = SPIN_GLASS
    algorithm = replica_exchange(
        checkerboard.build_kernel(model, "heat_bath"),
        partial(checkerboard.init, model=model),
        lambda state: state.energy,
        LADDER,
    )

    @jax.jit
    def run(key):
        init_key, run_key = jax.random.split(key)
        shape = (N_CHAINS, len(LADDER), model.L, model.L)
        states = jax.vmap(algorithm.init)(
            random_states(init_key, shape, model.state_values)
        )

        def one_step(states, step_key):
            keys = jax.random.split(step_key, N_CHAINS)
            states, info = jax.vmap(algorithm.step)(keys, states)
            return states, info.swap_acceptance_rate

        states, swap_rates = jax.lax.scan(
            one_step, states, jax.random.split(run_key, N_STEPS)
        )
        return states.replicas.spins, jnp.mean(swap_rates, axis=(0, 1))

    states, swap_rates = run(jax.random.key(100))
    return np.asarray(states), np.asarray(swap_rates)


def binned_counts(counts: np.ndarray, expected: np.ndarray):
    """Merge states of expected count below the minimum into bins of at
    least the minimum, in order of decreasing expected count."""
    observed_bins, expected_bins = [], []
    pooled_observed = pooled_expected = 0.0
    for state in np.argsort(-expected, kind="stable"):
        if expected[state] >= MIN_EXPECTED_COUNT:
            observed_bins.append(counts[state])
            expected_bins.append(expected[state])
            continue
        pooled_observed += counts[state]
        pooled_expected += expected[state]
        if pooled_expected >= MIN_EXPECTED_COUNT:
            observed_bins.append(pooled_observed)
            expected_bins.append(pooled_expected)
            pooled_observed = pooled_expected = 0.0
    # The remainder expects fewer than the minimum: add it to the last bin.
    observed_bins[-1] += pooled_observed
    expected_bins[-1] += pooled_expected
    return np.asarray(observed_bins, np.float64), np.asarray(expected_bins)


def g_test_p_value(states: np.ndarray, model, temperature: float) -> float:
    """G-test p-value of the visit counts of ``states`` against Boltzmann."""
    L = states.shape[-1]
    probabilities = enumerate_model(model, L, temperature).probabilities
    index = configuration_index(states, model.state_values)
    counts = np.bincount(index, minlength=probabilities.size)
    observed, expected = binned_counts(counts, probabilities * counts.sum())
    result = stats.power_divergence(observed, expected, lambda_="log-likelihood")
    return float(result.pvalue)


def exactness_cases():
    for name, case in CASES.items():
        for run, (coupling, temperature) in enumerate(case.runs):
            label = f"{name}-J2={coupling}" if name.startswith("nnn") else name
            yield pytest.param(name, run, id=f"{label}-T={temperature}")


@pytest.mark.parametrize("name, run", exactness_cases())
def test_sampler_matches_boltzmann(name, run):
    case = CASES[name]
    coupling, temperature = case.runs[run]
    states = final_states(name)[0][run]
    p_value = g_test_p_value(states, case.make_model(coupling), temperature)
    assert p_value > P_VALUE_THRESHOLD, (
        f"{name} at coupling {coupling}, T={temperature}: G-test p-value {p_value:.3g}"
    )


@pytest.mark.parametrize("name", CASES)
def test_g_test_detects_wrong_temperature(name):
    # The samples of the first run against the Boltzmann weights of a 20%
    # higher temperature must fail, or the test above could not fail.
    case = CASES[name]
    coupling, temperature = case.runs[0]
    states = final_states(name)[0][0]
    wrong = WRONG_TEMPERATURE_FACTOR * temperature
    p_value = g_test_p_value(states, case.make_model(coupling), wrong)
    assert p_value < P_VALUE_THRESHOLD


@pytest.mark.parametrize("name", [name for name in CASES if "heat-bath" in name])
def test_heat_bath_info(name):
    case = CASES[name]
    _, info = final_states(name)
    n_sites = case.L * case.L
    assert info.acceptance_rate.dtype == np.float32
    assert info.n_flipped.dtype == np.int32
    assert np.all((info.acceptance_rate >= 0) & (info.acceptance_rate <= 1))
    assert np.all((info.n_flipped >= 0) & (info.n_flipped <= n_sites))
    # The acceptance rate is the mean probability that a site changes and
    # n_flipped the number of changes, so their chain averages agree.
    np.testing.assert_allclose(
        info.n_flipped.mean(axis=1) / n_sites,
        info.acceptance_rate.mean(axis=1),
        atol=0.02,
    )


@pytest.mark.parametrize("temperature", LADDER)
def test_parallel_tempering_matches_boltzmann(temperature):
    states, _ = parallel_tempering_states()
    position = LADDER.index(temperature)
    p_value = g_test_p_value(states[:, position], SPIN_GLASS, temperature)
    assert p_value > P_VALUE_THRESHOLD, (
        f"parallel tempering at T={temperature}: G-test p-value {p_value:.3g}"
    )


def test_parallel_tempering_swaps_happen():
    _, swap_rates = parallel_tempering_states()
    assert swap_rates.shape == (len(LADDER) - 1,)
    assert np.all(swap_rates > 0.2), swap_rates


def test_parallel_tempering_power():
    states, _ = parallel_tempering_states()
    wrong = WRONG_TEMPERATURE_FACTOR * LADDER[0]
    assert g_test_p_value(states[:, 0], SPIN_GLASS, wrong) < P_VALUE_THRESHOLD


def test_binned_counts_keep_totals():
    expected = np.array([50.0, 3.0, 2.0, 2.5, 1.0, 0.5, 41.0])
    counts = np.array([48, 4, 1, 3, 2, 0, 42])
    observed_bins, expected_bins = binned_counts(counts, expected)
    assert observed_bins.sum() == counts.sum()
    assert expected_bins.sum() == pytest.approx(expected.sum())
    assert np.all(expected_bins >= MIN_EXPECTED_COUNT)
    np.testing.assert_allclose(expected_bins, [50.0, 41.0, 9.0])
    np.testing.assert_allclose(observed_bins, [48, 42, 10])


# The connected components of Swendsen-Wang against a union-find.


def union_find_labels(open_right, open_down):
    """Smallest flat site index of each site's cluster, by union-find."""
    L = open_right.shape[0]
    parent = list(range(L * L))

    def root(site):
        while parent[site] != site:
            site = parent[site]
        return site

    def join(a, b):
        a, b = root(a), root(b)
        parent[max(a, b)] = min(a, b)

    for i in range(L):
        for j in range(L):
            if open_right[i, j]:
                join(i * L + j, i * L + (j + 1) % L)
            if open_down[i, j]:
                join(i * L + j, ((i + 1) % L) * L + j)
    return np.array([root(site) for site in range(L * L)]).reshape(L, L)


def test_cluster_labels_match_union_find():
    rng = np.random.default_rng(0)
    L, n = 7, 64
    # Bond probabilities from 0 to 1 cover single sites to one wrapping cluster.
    probability = np.linspace(0.0, 1.0, n)[:, None, None, None]
    bonds = rng.random((n, 2, L, L)) < probability
    labels, n_steps = jax.jit(jax.vmap(cluster_labels))(
        jnp.asarray(bonds[:, 0]), jnp.asarray(bonds[:, 1])
    )
    for k in range(n):
        expected = union_find_labels(bonds[k, 0], bonds[k, 1])
        np.testing.assert_array_equal(np.asarray(labels[k]), expected)
    assert np.all(np.asarray(n_steps) >= 1)


def test_swendsen_wang_rejects_other_models():
    with pytest.raises(ValueError, match="Potts model only"):
        build_swendsen_wang(ClockModel(q=3))
    with pytest.raises(ValueError, match="J=-1.0 is invalid"):
        build_swendsen_wang(PottsModel(q=3, J=-1.0))


def test_metropolis_rejects_models_other_than_ising():
    with pytest.raises(ValueError, match="rule='metropolis' is invalid"):
        checkerboard.build_kernel(PottsModel(q=3), "metropolis")


def test_heat_bath_state_dtypes():
    states, _ = final_states("potts-heat-bath")
    assert states.dtype == np.int8
    assert set(np.unique(states)) == {0, 1, 2}
