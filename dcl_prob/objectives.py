"""Training objectives of distribution-consistent learning.

All losses are normalised per spin so that their size does not depend on the
lattice size. ``temperature`` is the training temperature ``T0`` (k_B = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.nn.rnn import AutoregressiveGRU

__all__ = [
    "log_variance",
    "negative_log_likelihood",
    "pseudo_likelihood_loss",
]


def negative_log_likelihood(net: AutoregressiveGRU, s: jax.Array) -> jax.Array:
    """Mean ``-log q(s) / N`` over spins ``s`` of shape ``(B, L, L)``."""
    n_sites = s.shape[-1] * s.shape[-2]
    return -jnp.mean(net.log_prob(s)) / n_sites


def pseudo_likelihood_loss(
    energy: ExtensiveEnergy, s: jax.Array, temperature: float
) -> jax.Array:
    """Mean negative log pseudo-likelihood per site of data ``s`` ``(B, L, L)``.

    Each site's conditional given the rest is exact for a Boltzmann
    distribution and needs no normalizer. For spins it is
    ``p(s_i | rest) = sigmoid((E(s^i) - E(s)) / T0)`` with ``s^i`` the
    configuration with spin ``i`` flipped. For ``q`` states it is
    ``softmax_a(-dE_i(a) / T0)`` at the current value, with ``dE_i(a)`` the
    energy change of setting site ``i`` to ``a`` (0 at the current value), so
    ``-log p(s_i | rest) = logsumexp_a(-dE_i(a) / T0)``.
    """
    if energy.n_states == 2:
        delta = energy.flip_energy_changes(s)
        return jnp.mean(jax.nn.softplus(-delta / temperature))
    changes = energy.site_energy_changes(s)  # (B, L, L, q)
    return jnp.mean(jax.nn.logsumexp(-changes / temperature, axis=-1))


def log_variance(
    log_q: jax.Array,
    energies: jax.Array,
    temperature: float,
    n_sites: int,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Log-variance divergence ``Var_r[log q(s) + E(s) / T0] / N``.

    It is zero exactly when ``q(s) = exp(-E(s) / T0) / Z`` on the support of
    the reference set ``r``, whatever ``Z`` is.

    Args:
        log_q: ``log q(s)`` of the reference configurations, shape ``(B,)``.
        energies: ``E(s)`` of the same configurations, shape ``(B,)``.
        temperature: training temperature ``T0``.
        n_sites: number of spins per configuration.
        weights: optional non-negative weights of the configurations, ``(B,)``.
    """
    residual = log_q + energies / temperature
    if weights is None:
        weights = jnp.ones_like(residual)
    weights = weights / jnp.sum(weights)
    mean = jnp.sum(weights * residual)
    return jnp.sum(weights * (residual - mean) ** 2) / n_sites
