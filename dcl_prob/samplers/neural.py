"""Samplers that use an autoregressive model q as the proposal distribution.

- :func:`neural_imh`: independence Metropolis-Hastings, BlackJAX's ``irmh``
  kernel with exact samples of q as proposals. Any q that gives every
  configuration a nonzero probability makes the chain exact.
- :func:`importance_sampling`: the partition function ``Z = sum_s exp(-E(s)/T)``
  and weighted observables from independent samples of q.

BlackJAX 1.7.1 calls the ``proposal_logdensity_fn`` of ``irmh`` with two
``RWState`` objects ``(from_state, to_state)`` and expects
``log q(to_state.position | from_state.position)``, which for an independence
proposal is ``log q(to_state.position)``. The Metropolis ratio it builds is
then ``pi(s') q(s) / (pi(s) q(s'))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm
from blackjax.mcmc.random_walk import RWInfo, RWState

from dcl_prob.hamiltonians import magnetization
from dcl_prob.samplers.checkerboard import check_temperature

__all__ = [
    "ISResult",
    "NeuralIMHPosition",
    "importance_sampling",
    "log_z_statistics",
    "neural_imh",
    "weighted_mean",
]

DEFAULT_IS_BATCH_SIZE = 4096


class NeuralIMHPosition(NamedTuple):
    """Position of one independence Metropolis-Hastings chain.

    ``log_q`` travels with the spins so that a step evaluates q once, on the
    proposal, and not a second time on the current state.
    """

    spins: jax.Array  # int8, shape (L, L), values -1/+1
    log_q: jax.Array  # float32, shape (), log q(spins) under the proposal


def _check_single_lattice(spins: jax.Array, event_shape: tuple) -> None:
    if tuple(spins.shape) != tuple(event_shape):
        raise ValueError(
            f"spins of shape {tuple(spins.shape)} are invalid: one chain of "
            f"neural_imh is one lattice of the proposal's shape {tuple(event_shape)}; "
            "use jax.vmap over a leading chain axis"
        )


def neural_imh(logdensity_fn: Callable, q) -> SamplingAlgorithm:
    """Independence Metropolis-Hastings with proposals drawn from ``q``.

    One step draws one configuration ``s'`` from ``q`` and accepts it with
    probability ``min(1, pi(s') q(s) / (pi(s) q(s')))``, using BlackJAX's
    ``irmh`` kernel.

    Args:
        logdensity_fn: unnormalized ``log pi`` of one configuration, int8
            spins of shape ``(L, L)`` to a scalar, e.g. ``-E(s) / T``.
        q: the proposal, a distribution with ``sample(key, ())`` returning
            one configuration of shape ``(L, L)`` and an exact, normalized
            ``log_prob``, such as
            :class:`~dcl_prob.nn.rnn.AutoregressiveSpins`.

    Returns:
        ``SamplingAlgorithm(init, step)``. ``init(spins)`` takes spins of
        shape ``(L, L)`` and returns a BlackJAX ``RWState`` whose
        ``position`` is a :class:`NeuralIMHPosition`. ``step(rng_key,
        state)`` returns the new state and a BlackJAX ``RWInfo`` with the
        ``acceptance_rate`` (the Metropolis acceptance probability of the
        proposal) and ``is_accepted``. In BlackJAX 1.7.1 its ``proposal``
        field contains the state after the accept-or-reject decision, not
        the rejected proposal. Use ``jax.vmap`` over a leading chain axis
        for several chains.
    """
    kernel = blackjax.irmh.build_kernel()

    def position_logdensity(position: NeuralIMHPosition) -> jax.Array:
        return logdensity_fn(position.spins)

    def propose(rng_key: jax.Array) -> NeuralIMHPosition:
        spins = q.sample(rng_key, ())
        return NeuralIMHPosition(spins, q.log_prob(spins))

    def proposal_logdensity_fn(from_state: RWState, to_state: RWState) -> jax.Array:
        del from_state  # an independence proposal ignores where it starts
        return to_state.position.log_q

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None) -> RWState:
        del rng_key
        spins = jnp.asarray(position, dtype=jnp.int8)
        _check_single_lattice(spins, q.event_shape)
        start = NeuralIMHPosition(spins, q.log_prob(spins))
        return blackjax.irmh.init(start, position_logdensity)

    def step_fn(rng_key: jax.Array, state: RWState) -> tuple[RWState, RWInfo]:
        return kernel(
            rng_key, state, position_logdensity, propose, proposal_logdensity_fn
        )

    return SamplingAlgorithm(init_fn, step_fn)


class ISResult(NamedTuple):
    """Importance-sampling estimates from samples of q.

    Energies are those of the ``energy_fn`` passed in. The observable
    estimates are self-normalized (ratio) estimates, and their errors come
    from the delta method.
    """

    log_z: float  # ln of the mean importance weight, an estimate of ln Z
    log_z_err: float  # standard error of log_z, std(w) / (mean(w) sqrt(n))
    ess: float  # Kish effective sample size (sum w)^2 / sum w^2
    ess_fraction: float  # ess / n_samples, in (0, 1]
    energy: float  # weighted mean energy per spin, <E> / N
    energy_err: float  # standard error of energy
    abs_m: float  # weighted mean absolute magnetization per spin, <|m|>
    abs_m_err: float  # standard error of abs_m
    n_samples: int  # number of samples drawn from q
    log_weights: np.ndarray  # float32, shape (n_samples,), -E(s)/T - log q(s)


@eqx.filter_jit
def _importance_batch(q, energy_fn, beta, key, batch_size: int):
    """Log weights, total energies and |m| of ``batch_size`` samples of q."""
    spins = q.sample(key, (batch_size,))
    energy = energy_fn(spins)
    log_weight = -beta * energy - q.log_prob(spins)
    abs_m = jnp.abs(magnetization(spins))
    return log_weight, energy, abs_m


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Self-normalized mean of ``values`` and its delta-method standard error.

    Args:
        weights: importance weights ``(n,)``, already normalized to sum to one.
        values: the observable of each sample, ``(n,)``.

    Returns:
        ``(mean, standard_error)`` as floats, in the units of ``values``.
    """
    mean = float(np.sum(weights * values))
    variance = float(np.sum(weights**2 * (values - mean) ** 2))
    return mean, math.sqrt(variance)


def log_z_statistics(log_weights: np.ndarray) -> tuple[float, float, float]:
    """Return ``(ln mean(w), standard error of it, Kish ESS)`` in float64.

    Every weight is divided by the largest one before exponentiation, so
    no weight overflows and the largest scaled weight is exactly 1.
    """
    n = log_weights.size
    shift = float(np.max(log_weights))
    scaled = np.exp(log_weights - shift)
    mean = float(np.mean(scaled))
    log_z = shift + math.log(mean)
    relative_std = float(np.std(scaled, ddof=1)) / mean if n > 1 else math.inf
    ess = float(np.sum(scaled)) ** 2 / float(np.sum(scaled**2))
    return log_z, relative_std / math.sqrt(n), ess


def importance_sampling(
    q,
    energy_fn: Callable,
    temperature: float,
    n_samples: int,
    *,
    key: jax.Array,
    batch_size: int = DEFAULT_IS_BATCH_SIZE,
) -> ISResult:
    """Estimate ``ln Z`` of ``exp(-E(s) / T)`` and its observables from q.

    Draws ``n_samples`` independent configurations from ``q`` and weights
    each by ``w = exp(-E(s) / T) / q(s)``. The mean weight is an unbiased
    estimate of ``Z``. Its log has a standard error of ``std(w) / (mean(w)
    sqrt(n))`` to first order (the delta method) and a downward bias of
    about half that error squared.

    Samples are drawn and scored ``batch_size`` at a time by one compiled
    function, so device memory is bounded by the batch. The host keeps
    three floats per sample, and the statistics are summed in float64.

    Args:
        q: the proposal, a distribution with ``sample(key, (B,))`` returning
            spins of shape ``(B, L, L)`` and an exact, normalized
            ``log_prob``, such as
            :class:`~dcl_prob.nn.rnn.AutoregressiveSpins`.
        energy_fn: total energies of spins, ``(B, L, L) -> (B,)``, such as
            ``IsingModel().energy`` or an
            :class:`~dcl_prob.nn.ednn.ExtensiveEnergy`.
        temperature: target temperature ``T`` (k_B = 1).
        n_samples: number of samples, at least 2.
        key: PRNG key.
        batch_size: samples drawn per compiled call.

    Returns:
        An :class:`ISResult`.

    Raises:
        ValueError: if ``temperature`` is not positive and finite, if
            ``n_samples < 2`` or ``batch_size < 1``, or if a log weight is
            not finite.

    NOTE: the standard error is itself estimated from the weights. When q
    misses a region that carries much of ``exp(-E/T)``, both ``ln Z`` and its
    error are too small and nothing in the weights shows it. A small
    ``ess_fraction`` is the usual warning sign.
    """
    check_temperature(temperature)
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 2:
        raise ValueError(
            f"n_samples={n_samples!r} is invalid: importance sampling needs an "
            "integer of at least 2 to estimate its standard error"
        )
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"batch_size={batch_size!r} is invalid: pass a positive integer"
        )
    n_samples = int(n_samples)
    batch = min(int(batch_size), n_samples)
    n_batches = math.ceil(n_samples / batch)
    beta = jnp.asarray(1.0 / float(temperature), jnp.float32)

    # Every call has the same batch size, so the function compiles once. The
    # surplus samples of the last batch are dropped below.
    parts = []
    for batch_key in jax.random.split(key, n_batches):
        outputs = _importance_batch(q, energy_fn, beta, batch_key, batch)
        parts.append(tuple(np.asarray(x) for x in outputs))
    log_weights, energy, abs_m = (
        np.concatenate(columns)[:n_samples] for columns in zip(*parts)
    )

    n_bad = int(np.sum(~np.isfinite(log_weights)))
    if n_bad:
        raise ValueError(
            f"{n_bad} of {n_samples} log weights are not finite: check that "
            "energy_fn returns finite energies and q a finite log_prob"
        )

    log_weights_f64 = log_weights.astype(np.float64)
    log_z, log_z_err, ess = log_z_statistics(log_weights_f64)
    normalized = np.exp(log_weights_f64 - np.max(log_weights_f64))
    normalized /= np.sum(normalized)
    n_sites = math.prod(q.event_shape)
    energy_mean, energy_err = weighted_mean(
        normalized, energy.astype(np.float64) / n_sites
    )
    abs_m_mean, abs_m_err = weighted_mean(normalized, abs_m.astype(np.float64))
    return ISResult(
        log_z=log_z,
        log_z_err=log_z_err,
        ess=ess,
        ess_fraction=ess / n_samples,
        energy=energy_mean,
        energy_err=energy_err,
        abs_m=abs_m_mean,
        abs_m_err=abs_m_err,
        n_samples=n_samples,
        log_weights=log_weights,
    )
