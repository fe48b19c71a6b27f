"""The DCL likelihood: the Boltzmann likelihood with ``ln Z`` by importance sampling.

For couplings ``theta`` and a configuration ``s`` of a family of
:mod:`dcl_prob.bayes_families`, ``log p(s | theta) = theta . S(s) / T -
ln Z(theta)``. A fitted proposal ``q`` (for example the autoregressive model
of :func:`dcl_prob.fit.fit`) gives ``K`` fixed samples ``s_k``, drawn once,
and

    ln Z(theta) ~ logsumexp_k(theta . S(s_k) / T - log q(s_k)) - log K.

The same samples serve every ``theta``, so the estimate is a smooth function
of ``theta`` that NUTS can differentiate. It is good only where the
importance weights ``w_k = exp(theta . S(s_k) / T) / q(s_k)`` are not
dominated by a few samples, which :func:`proposal_ess` measures with Kish's
effective sample size ``(sum w)^2 / sum w^2``. Because ``E[Z_hat] = Z``,
``ln Z_hat`` is biased low by about ``Var(Z_hat) / (2 Z^2)``, roughly
``1 / (2 ESS)``, per configuration.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DCLData",
    "MIN_PROPOSAL_ESS",
    "dcl_data",
    "dcl_log_likelihood",
    "proposal_ess",
]

# Below this Kish ESS of the importance weights at the posterior mean,
# posterior() warns that ln Z and hence the DCL posterior are unreliable.
MIN_PROPOSAL_ESS = 100
# Proposal configurations per log_prob call, to bound the memory of q.
_LOG_PROB_BATCH = 4096


class DCLData(NamedTuple):
    """Arrays of the DCL likelihood; every field is float32."""

    data_statistics: jax.Array  # (n, p): S(s) of the data
    proposal_statistics: jax.Array  # (K, p): S(s_k) of the proposal samples
    proposal_log_prob: jax.Array  # (K,): log q(s_k)


def _log_weights(theta, data: DCLData, temperature):
    return data.proposal_statistics @ theta / temperature - data.proposal_log_prob


def dcl_log_likelihood(theta, data: DCLData, temperature) -> jax.Array:
    """``log p(s_n | theta)`` of each data configuration, shape ``(n,)``."""
    log_weights = _log_weights(theta, data, temperature)
    n_proposal = log_weights.shape[0]
    log_z = jax.nn.logsumexp(log_weights) - jnp.log(jnp.float32(n_proposal))
    return data.data_statistics @ theta / temperature - log_z


def proposal_ess(theta, data: DCLData, temperature) -> tuple[float, float]:
    """Kish ESS of the importance weights at ``theta`` and the ``ln Z`` estimate.

    Returns:
        ``(ess, log_z)``: ``ess`` from 1 (one sample dominates) to ``K``.
    """
    log_weights = np.asarray(
        _log_weights(jnp.asarray(theta), data, temperature), np.float64
    )
    log_sum = np.logaddexp.reduce(log_weights)
    ess = float(np.exp(2.0 * log_sum - np.logaddexp.reduce(2.0 * log_weights)))
    return ess, float(log_sum - np.log(len(log_weights)))


def dcl_data(family, spins, proposal, n_proposal: int, *, key) -> DCLData:
    """Draw ``n_proposal`` samples of ``proposal`` and compute the statistics.

    Args:
        family: a coupling family of :mod:`dcl_prob.bayes_families`.
        spins: int8 data, shape ``(n, L, L)``, already checked.
        proposal: an object with ``sample(key, (K,))`` returning ``(K, L, L)``
            configurations in the encoding of ``spins`` and ``log_prob(s)``
            returning normalized ``log q(s)`` of shape ``(K,)``, such as
            :class:`dcl_prob.nn.rnn.AutoregressiveSpins`.
        n_proposal: the number ``K`` of samples.
        key: JAX PRNG key of the samples.

    Raises:
        ValueError: if the samples have the wrong shape or values, or
            ``log q`` is not finite.
    """
    samples = np.asarray(proposal.sample(key, (n_proposal,)))
    expected = (n_proposal,) + spins.shape[1:]
    if samples.shape != expected:
        raise ValueError(
            f"the proposal returned samples of shape {samples.shape}, expected "
            f"{expected}: fit the proposal on configurations of this lattice size"
        )
    allowed = np.unique(spins)
    if family.encoding == "pm1":
        allowed = np.array([-1, 1])
    elif getattr(family, "q", None) is not None:
        allowed = np.arange(family.q)
    bad = np.setdiff1d(np.unique(samples), allowed)
    if bad.size:
        raise ValueError(
            f"the proposal returned spin values {bad[:5].tolist()} that the data "
            f"encoding does not allow (allowed: {allowed.tolist()}); use a "
            "proposal fitted to this kind of data"
        )
    log_prob = np.concatenate(
        [
            np.asarray(proposal.log_prob(jnp.asarray(samples[i : i + _LOG_PROB_BATCH])))
            for i in range(0, n_proposal, _LOG_PROB_BATCH)
        ]
    ).astype(np.float32)
    if log_prob.shape != (n_proposal,) or not np.all(np.isfinite(log_prob)):
        raise ValueError(
            "the proposal's log_prob of its own samples is not a finite array of "
            f"shape ({n_proposal},); check that proposal.log_prob returns log q(s) "
            "per configuration"
        )
    return DCLData(
        data_statistics=family.statistics(spins),
        proposal_statistics=family.statistics(samples),
        proposal_log_prob=jnp.asarray(log_prob),
    )
