"""Reference samplers against exact enumeration of small Ising lattices.

Each comparison passes when the Monte Carlo mean is within 4 Monte Carlo
standard errors (ArviZ's ESS-based MCSE over 64 chains) of the exact value.
If those error bars are right, one comparison fails with probability about
6e-5 (two-sided normal tail), and one of the 16 comparisons in this file
with probability about 1e-3. The seeds are fixed, so the outcome is the same
on every run.
"""

from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob.exact import enumerate_ising
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.samplers import (
    CheckerboardInfo,
    CheckerboardState,
    WolffInfo,
    WolffState,
    checkerboard_metropolis,
    wolff,
)
from dcl_prob.samplers.checkerboard import checkerboard_heat_bath

MODEL = IsingModel(J=1.0, h=0.0)
BUILDERS = {
    "checkerboard": checkerboard_metropolis,
    "heat_bath": checkerboard_heat_bath,
    "wolff": wolff,
}
N_CHAINS = 64
N_BURN_IN = 500
N_DRAWS = 3000
N_SIGMA = 4.0
# Upper bound on the MCSE, so that large error bars cannot hide a bias. With
# it, any bias of 4 * 0.004 = 0.016 per spin or more fails.
MAX_MCSE = 0.004


@partial(jax.jit, static_argnames=("sampler", "L"))
def run_chains(key, temperature, *, sampler, L):
    """Run N_CHAINS chains; return (chain, draw) traces of e and |m| per spin.

    Also returns the largest difference between the energy stored in the
    state and the energy recomputed from its spins, the final state and the
    info of the last step.
    """
    algorithm = BUILDERS[sampler](MODEL, temperature)
    init_key, run_key = jax.random.split(key)
    up = jax.random.bernoulli(init_key, 0.5, (N_CHAINS, L, L))
    state = jax.vmap(algorithm.init)(jnp.where(up, 1, -1).astype(jnp.int8))

    def one_step(state, step_key):
        keys = jax.random.split(step_key, N_CHAINS)
        state, info = jax.vmap(algorithm.step)(keys, state)
        energy_error = jnp.max(jnp.abs(state.energy - MODEL.energy(state.spins)))
        abs_m = jnp.abs(jnp.mean(state.spins.astype(jnp.float32), axis=(-2, -1)))
        return state, (state.energy / (L * L), abs_m, energy_error, info)

    step_keys = jax.random.split(run_key, N_BURN_IN + N_DRAWS)
    state, (energy, abs_m, energy_error, info) = jax.lax.scan(
        one_step, state, step_keys
    )
    last_info = jax.tree.map(lambda x: x[-1], info)
    return (
        energy[N_BURN_IN:].T,
        abs_m[N_BURN_IN:].T,
        jnp.max(energy_error),
        state,
        last_info,
    )


def assert_matches_exact(sampler, L, temperature, seed):
    energy, abs_m, energy_error, _, _ = run_chains(
        jax.random.key(seed), temperature, sampler=sampler, L=L
    )
    exact = enumerate_ising(L, temperature, J=MODEL.J, h=MODEL.h)
    assert float(energy_error) == 0.0

    for name, trace, reference in (
        ("energy", energy, exact.energy),
        ("abs_m", abs_m, exact.abs_m),
    ):
        trace = np.asarray(trace, dtype=np.float64)
        mean = trace.mean()
        mcse = float(np.squeeze(az.mcse(trace, method="mean")))
        assert mcse < MAX_MCSE, f"{name}: MCSE {mcse:.2g} too large to test"
        assert abs(mean - reference) < N_SIGMA * mcse, (
            f"{sampler} L={L} T={temperature}: {name} {mean:.5f} +- {mcse:.5f}, "
            f"exact {reference:.5f}"
        )


@pytest.mark.parametrize("sampler", ["checkerboard", "wolff"])
@pytest.mark.parametrize("temperature", [1.5, 2.269, 3.0])
def test_sampler_matches_enumeration_4x4(sampler, temperature):
    assert_matches_exact(sampler, 4, temperature, seed=round(100 * temperature))


@pytest.mark.parametrize("L", [2, 3])
def test_wolff_exact_small_and_odd_L(L):
    # L = 2 has two bonds between each neighbouring pair, and L = 3 is odd.
    assert_matches_exact("wolff", L, 2.0, seed=L)


@pytest.mark.parametrize(
    "sampler, state_type, info_type",
    [
        ("checkerboard", CheckerboardState, CheckerboardInfo),
        ("wolff", WolffState, WolffInfo),
    ],
)
def test_state_and_info_dtypes(sampler, state_type, info_type):
    # Reuses the compiled 4 x 4 run; every array has a leading chain axis.
    *_, state, info = run_chains(jax.random.key(0), 3.0, sampler=sampler, L=4)
    assert isinstance(state, state_type)
    assert isinstance(info, info_type)
    assert state.spins.dtype == jnp.int8
    assert state.spins.shape == (N_CHAINS, 4, 4)
    assert state.energy.dtype == jnp.float32
    assert state.energy.shape == (N_CHAINS,)
    for name, value in info._asdict().items():
        assert value.shape == (N_CHAINS,), name
    if sampler == "wolff":
        assert info.cluster_size.dtype == jnp.int32
        assert jnp.all(info.cluster_size >= 1)
    else:
        assert info.acceptance_rate.dtype == jnp.float32
        assert info.n_flipped.dtype == jnp.int32


def test_checkerboard_leaves_zero_field_cycle():
    # Diagonal stripes of width 2: every site has zero local field, so with
    # acceptance 1 at dE = 0 every sweep would flip all spins and the chain
    # would cycle between the stripes and their negation forever.
    i, j = np.indices((4, 4))
    stripes = jnp.asarray(np.where((i + j) % 4 < 2, 1, -1), dtype=jnp.int8)
    assert jnp.all(MODEL.flip_energy_change(stripes) == 0)

    algorithm = checkerboard_metropolis(MODEL, 2.0)
    step = jax.jit(algorithm.step)
    state = algorithm.init(stripes)
    energies = []
    for key in jax.random.split(jax.random.key(0), 10):
        state, _ = step(key, state)
        energies.append(float(state.energy))
    assert min(energies) < 0.0


@pytest.mark.parametrize("builder", [checkerboard_metropolis, checkerboard_heat_bath])
def test_checkerboard_runs_on_odd_L(builder):
    # Odd L uses three colour classes; exactness on 3 x 3 is tested against
    # enumeration in test_samplers_exact.py.
    algorithm = builder(MODEL, 2.0)
    state = algorithm.init(jnp.ones((5, 5), jnp.int8))
    state, info = algorithm.step(jax.random.key(0), state)
    assert state.spins.shape == (5, 5)
    assert float(state.energy) == float(MODEL.energy(state.spins))
    assert 0.0 <= float(info.acceptance_rate) <= 1.0


def test_wolff_rejects_field():
    with pytest.raises(ValueError, match="h=0.5 is invalid"):
        wolff(IsingModel(J=1.0, h=0.5), 2.0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_samplers_reject_invalid_temperature(temperature):
    for builder in BUILDERS.values():
        with pytest.raises(ValueError, match="temperature"):
            builder(MODEL, temperature)


def test_samplers_reject_non_square_spins():
    for builder in BUILDERS.values():
        with pytest.raises(ValueError, match="square"):
            builder(MODEL, 2.0).init(jnp.ones((4, 6), jnp.int8))
