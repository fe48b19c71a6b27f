"""Neural independence Metropolis-Hastings, importance sampling and tempered
SMC against exact enumeration of small Ising lattices.

Failure rates, with fixed seeds so that every run gives the same outcome:

- IMH: each G-test of the final states of independent chains against the
  Boltzmann weights fails with probability 1e-4 when the sampler is exact.
- IS: each comparison passes within 4 delta-method standard errors, a
  two-sided normal tail of about 6e-5.
- SMC: the threshold is Student's t quantile for a two-sided 1e-4 tail with
  ``n_runs - 1`` degrees of freedom, because the error comes from the spread
  of ``n_runs`` independent runs.
"""

import functools
import math
from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dcl_prob.exact import boltzmann_probabilities, enumerate_ising
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.samplers.neural import (
    ISResult,
    NeuralIMHPosition,
    importance_sampling,
    neural_imh,
)
from dcl_prob.samplers.single_site import flip_one_site
from dcl_prob.samplers.smc import SMCResult, smc_log_z

MODEL = IsingModel()
TEMPERATURES = (1.0, 2.269, 5.0)
IMH_L = 3
N_CHAINS = 2**14
N_IMH_STEPS = 20
P_VALUE_THRESHOLD = 1e-4
MIN_EXPECTED_COUNT = 5.0
N_SIGMA = 4.0


def random_proposal(L: int, seed: int) -> AutoregressiveSpins:
    """An untrained q whose log q spreads over about 1.5 nats on 3 x 3.

    The default initialisation makes q nearly uniform, and a uniform q cannot
    tell the right independence-proposal ratio from the reversed one.
    """
    key_net, key_weight, key_bias = jax.random.split(jax.random.key(seed), 3)
    net = AutoregressiveGRU(L, 8, key=key_net)
    net = eqx.tree_at(
        lambda n: (n.output_weight, n.site_output_bias),
        net,
        (
            net.output_weight + jax.random.normal(key_weight, (8,)),
            0.5 * jax.random.normal(key_bias, (L * L,)),
        ),
    )
    return AutoregressiveSpins(net)


def configuration_index(spins: np.ndarray) -> np.ndarray:
    """Row of each configuration ``(B, L, L)`` in ``all_configurations`` order."""
    flat = np.asarray(spins).reshape(spins.shape[0], -1)
    n_sites = flat.shape[1]
    bits = (flat == -1).astype(np.int64)
    return bits @ (1 << np.arange(n_sites - 1, -1, -1))


def g_test_p_value(states: np.ndarray, probs: np.ndarray) -> float:
    """G-test p-value of sampled state indices against exact probabilities.

    States whose expected count is below MIN_EXPECTED_COUNT are pooled into
    one bin, so that the chi-square approximation of the G statistic holds.
    """
    observed = np.bincount(states, minlength=probs.size).astype(np.float64)
    expected = probs * states.size
    rare = expected < MIN_EXPECTED_COUNT
    observed = np.append(observed[~rare], observed[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
    if expected[-1] == 0.0:
        observed, expected = observed[:-1], expected[:-1]
    result = stats.power_divergence(observed, expected, lambda_="log-likelihood")
    return float(result.pvalue)


def exact_draws(L: int, temperature: float, seed: int):
    """N_CHAINS independent exact Boltzmann configurations and all probabilities."""
    configs, probs = boltzmann_probabilities(L, temperature)
    rng = np.random.default_rng(seed)
    index = rng.choice(probs.size, size=N_CHAINS, p=probs)
    return jnp.asarray(configs[index]), probs


def reversed_irmh(logdensity_fn, q):
    """IRMH that scores log q of the current state in place of the proposal's.

    It serves as a negative control for the G-test.
    """

    def propose(rng_key):
        return q.sample(rng_key, ())

    def wrong_proposal_logdensity(from_state, to_state):
        del to_state
        return q.log_prob(from_state.position)

    return blackjax.irmh(logdensity_fn, propose, wrong_proposal_logdensity)


class IMHRun(NamedTuple):
    spins: np.ndarray  # int8, (N_CHAINS, L, L), final configurations
    acceptance: np.ndarray  # float32, (N_IMH_STEPS,), mean acceptance per step
    before_last: np.ndarray  # int8, (N_CHAINS, L, L), spins before the last step
    last_info: object  # RWInfo of the last step, arrays with a chain axis


@eqx.filter_jit
def run_imh(q, temperature, start, key, *, reverse=False):
    """Run one chain per start configuration for N_IMH_STEPS steps."""

    def logdensity_fn(s):
        return -MODEL.energy(s) / temperature

    if reverse:
        algorithm = reversed_irmh(logdensity_fn, q)
    else:
        algorithm = neural_imh(logdensity_fn, q)
    n_chains = start.shape[0]

    def one_step(state, step_key):
        keys = jax.random.split(step_key, n_chains)
        return jax.vmap(algorithm.step)(keys, state)

    def scan_step(state, step_key):
        state, info = one_step(state, step_key)
        return state, jnp.mean(info.acceptance_rate)

    step_keys = jax.random.split(key, N_IMH_STEPS)
    state = jax.vmap(algorithm.init)(start)
    state, acceptance = jax.lax.scan(scan_step, state, step_keys[:-1])
    last_state, last_info = one_step(state, step_keys[-1])
    acceptance = jnp.append(acceptance, jnp.mean(last_info.acceptance_rate))
    if reverse:
        return last_state.position, acceptance, state.position, last_info
    return last_state.position.spins, acceptance, state.position.spins, last_info


@functools.cache
def imh_run(temperature: float, reverse: bool = False) -> IMHRun:
    """Chains started from exact Boltzmann draws at ``temperature``, cached so
    that several tests share one run."""
    q = random_proposal(IMH_L, seed=0)
    start, _ = exact_draws(IMH_L, temperature, seed=1)
    outputs = run_imh(
        q, jnp.float32(temperature), start, jax.random.key(2), reverse=reverse
    )
    spins, acceptance, before_last, last_info = jax.device_get(outputs)
    return IMHRun(spins, acceptance, before_last, last_info)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_imh_matches_boltzmann(temperature):
    run = imh_run(temperature)
    _, probs = boltzmann_probabilities(IMH_L, temperature)

    assert run.spins.dtype == np.int8
    assert np.min(run.acceptance) > 0.0
    p_value = g_test_p_value(configuration_index(run.spins), probs)
    assert p_value > P_VALUE_THRESHOLD


def test_reversed_proposal_density_fails_g_test():
    """The G-test detects IRMH with log q of the current state in place of the
    proposal's, which converges to ``pi q**2`` instead of ``pi``."""
    run = imh_run(5.0, reverse=True)
    _, probs = boltzmann_probabilities(IMH_L, 5.0)
    p_value = g_test_p_value(configuration_index(run.spins), probs)
    assert p_value < P_VALUE_THRESHOLD


def test_imh_acceptance_uses_proposal_ratio():
    """The acceptance probability is min(1, pi(s') q(s) / (pi(s) q(s'))).

    BlackJAX 1.7.1 stores the state after the accept-or-reject decision in
    ``RWInfo.proposal``, so the proposal is known only where it was accepted,
    and the check uses those chains.
    """
    temperature = 2.269
    q = random_proposal(IMH_L, seed=0)
    run = imh_run(temperature)
    accepted = np.asarray(run.last_info.is_accepted)
    current = run.before_last[accepted]
    proposed = np.asarray(run.last_info.proposal.position.spins)[accepted]

    def log_q(spins):
        return np.asarray(q.log_prob(jnp.asarray(spins)), np.float64)

    def log_pi(spins):
        return -np.asarray(MODEL.energy(jnp.asarray(spins)), np.float64) / temperature

    log_ratio = log_pi(proposed) - log_pi(current) + log_q(current) - log_q(proposed)
    expected = np.minimum(1.0, np.exp(log_ratio))
    acceptance = np.asarray(run.last_info.acceptance_rate)[accepted]

    assert np.sum(expected < 0.5) > 100  # enough cases where the ratio matters
    np.testing.assert_allclose(acceptance, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        run.last_info.proposal.position.log_q[accepted],
        log_q(proposed),
        rtol=1e-5,
        atol=1e-5,
    )
    rejected_spins = run.spins[~accepted]
    np.testing.assert_array_equal(rejected_spins, run.before_last[~accepted])


def test_imh_init_rejects_wrong_lattice_shape():
    q = random_proposal(IMH_L, seed=0)
    algorithm = neural_imh(lambda s: -MODEL.energy(s), q)
    with pytest.raises(ValueError, match="shape"):
        algorithm.init(jnp.ones((4, 4), jnp.int8))
    state = algorithm.init(jnp.ones((IMH_L, IMH_L), jnp.int8))
    assert isinstance(state.position, NeuralIMHPosition)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_importance_sampling_matches_enumeration(temperature):
    q = random_proposal(IMH_L, seed=0)
    result = importance_sampling(
        q, MODEL.energy, temperature, 2**16, key=jax.random.key(5)
    )
    exact = enumerate_ising(IMH_L, temperature)

    assert isinstance(result, ISResult)
    assert result.n_samples == 2**16
    assert result.log_weights.shape == (2**16,)
    assert result.ess_fraction > 1e-3
    assert result.log_z_err < 0.1
    assert abs(result.log_z - exact.log_z) < N_SIGMA * result.log_z_err
    assert abs(result.energy - exact.energy) < N_SIGMA * result.energy_err
    assert abs(result.abs_m - exact.abs_m) < N_SIGMA * result.abs_m_err


def test_importance_sampling_statistics_from_log_weights():
    q = random_proposal(IMH_L, seed=0)
    n_samples = 5000  # not a multiple of the batch size
    result = importance_sampling(
        q, MODEL.energy, 2.269, n_samples, key=jax.random.key(6), batch_size=4096
    )
    log_w = result.log_weights.astype(np.float64)
    weights = np.exp(log_w - log_w.max())
    ess = weights.sum() ** 2 / np.sum(weights**2)

    assert result.log_weights.shape == (n_samples,)
    assert math.isclose(result.ess, ess, rel_tol=1e-9)
    assert math.isclose(result.ess_fraction, ess / n_samples, rel_tol=1e-9)
    expected_log_z = log_w.max() + math.log(weights.mean())
    assert math.isclose(result.log_z, expected_log_z, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("temperature", 0.0), ("n_samples", 1), ("batch_size", 0)],
)
def test_importance_sampling_rejects_invalid_arguments(argument, value):
    q = random_proposal(IMH_L, seed=0)
    arguments = {"temperature": 2.0, "n_samples": 100, "batch_size": 64}
    arguments[argument] = value
    with pytest.raises(ValueError, match=argument):
        importance_sampling(q, MODEL.energy, key=jax.random.key(0), **arguments)


SMC_L = 4
SMC_RUNS = 32
SMC_SETTINGS = {"n_particles": 512, "n_runs": SMC_RUNS, "n_sweeps": 1}


@pytest.mark.parametrize("temperature", [2.269, 5.0])
def test_smc_log_z_matches_enumeration(temperature):
    result = smc_log_z(
        MODEL.energy, SMC_L, temperature, key=jax.random.key(7), **SMC_SETTINGS
    )
    exact = enumerate_ising(SMC_L, temperature)
    threshold = stats.t.ppf(1.0 - 0.5 * P_VALUE_THRESHOLD, df=SMC_RUNS - 1)

    assert isinstance(result, SMCResult)
    assert result.log_z_runs.shape == (SMC_RUNS,)
    assert np.all(result.n_steps >= 1)
    assert np.all((result.acceptance_rate > 0) & (result.acceptance_rate <= 1))
    assert result.log_z_err < 0.1
    assert abs(result.log_z - exact.log_z) < threshold * result.log_z_err


def test_smc_raises_when_max_steps_too_small():
    with pytest.raises(RuntimeError, match="max_steps"):
        smc_log_z(
            MODEL.energy,
            SMC_L,
            2.269,
            key=jax.random.key(8),
            max_steps=1,
            **SMC_SETTINGS,
        )


def test_single_flip_proposal_flips_one_spin():
    spins = jnp.ones((5, 5), jnp.int8)
    keys = jax.random.split(jax.random.key(9), 200)
    proposals = jax.vmap(flip_one_site, in_axes=(0, None))(keys, spins)
    n_flipped = np.sum(np.asarray(proposals) == -1, axis=(1, 2))

    assert proposals.dtype == jnp.int8
    np.testing.assert_array_equal(n_flipped, 1)
    flipped_sites = np.unique(np.argmin(np.asarray(proposals).reshape(200, -1), 1))
    assert flipped_sites.size == 25
