"""Single-site Metropolis for any log density of +-1 spins, through ``blackjax.rmh``.

The proposal flips one uniformly chosen site. Going from ``s`` to a
configuration that differs from it at one site and coming back both have
probability ``1 / N`` on ``N`` sites, so the proposal is symmetric and
``blackjax.rmh`` needs no proposal density. The acceptance probability is
``min(1, p(s') / p(s))``.

``blackjax.rmh`` (BlackJAX 1.7.1) treats the position as an opaque pytree.
It never adds to it or differentiates it, and selects between the current and
the proposed state with ``jax.lax.cond``, so int8 positions pass through
unchanged. Each proposal evaluates ``logdensity_fn`` on the whole lattice,
which makes one sweep cost ``N`` full evaluations. This sampler is the
reference for arbitrary log densities. The checkerboard and tile-local
samplers compute only the local energy change and are much faster on large
lattices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from blackjax.mcmc.random_walk import RWState

from dcl_prob.samplers.checkerboard import check_temperature

__all__ = [
    "SweepInfo",
    "build_kernel",
    "flip_one_site",
    "init",
    "single_site_metropolis",
    "sweep",
]


class SweepInfo(NamedTuple):
    """Information about one sweep of ``N`` single-site proposals."""

    # float32, shape (): mean Metropolis acceptance probability of the N
    # proposals
    acceptance_rate: jax.Array
    n_accepted: jax.Array  # int32, shape (): number of accepted flips


def flip_one_site(rng_key: jax.Array, position: jax.Array) -> jax.Array:
    """Flip the sign of one uniformly chosen site of the +-1 spins ``position``.

    Args:
        rng_key: PRNG key that picks the site.
        position: spins -1/+1 of any shape, usually ``(L, L)``.

    Returns:
        The spins with one site flipped, same shape and dtype.
    """
    site = jax.random.randint(rng_key, (), 0, position.size)
    flat = position.reshape(-1)
    return flat.at[site].set(-flat[site]).reshape(position.shape)


def init(position: jax.Array, logdensity_fn: Callable) -> RWState:
    """Create the ``RWState`` of the int8 spins ``position``, of any lattice shape.

    Raises:
        ValueError: if ``position`` is a scalar.
    """
    spins = jnp.asarray(position, dtype=jnp.int8)
    if spins.ndim == 0:
        raise ValueError(
            "position of shape () is invalid: pass the spins of one chain as an "
            "array with one axis per lattice dimension, for example (L, L)"
        )
    return blackjax.mcmc.random_walk.init(spins, logdensity_fn)


def single_site_metropolis(logdensity_fn: Callable) -> SamplingAlgorithm:
    """Single-site Metropolis on ``logdensity_fn`` as a BlackJAX ``SamplingAlgorithm``.

    ``logdensity_fn(spins)`` returns the unnormalized float32 log probability
    of int8 +-1 spins, for example ``-E(spins) / T``. ``init`` casts the
    position to int8 and returns a ``blackjax.mcmc.random_walk.RWState``.
    One ``step`` is one proposal from :func:`flip_one_site` through
    ``blackjax.rmh`` and returns BlackJAX's ``RWInfo``. Use :func:`sweep` for
    ``N`` proposals at a time, and ``jax.vmap`` over a leading chain axis for
    several chains.
    """
    algorithm = blackjax.rmh(logdensity_fn, flip_one_site)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None) -> RWState:
        del rng_key
        return init(position, logdensity_fn)

    return SamplingAlgorithm(init_fn, algorithm.step)


def sweep(
    rng_key: jax.Array, state: RWState, step_fn: Callable
) -> tuple[RWState, SweepInfo]:
    """Run one sweep: ``N = state.position.size`` calls of ``step_fn``.

    ``step_fn(rng_key, state) -> (state, info)`` is the ``step`` of
    :func:`single_site_metropolis`; each call gets its own key. The sites are
    drawn at random, so a sweep visits a given site once on average, not
    exactly once.
    """
    n_sites = state.position.size
    keys = jax.random.split(rng_key, n_sites)

    def one_proposal(state, key):
        state, info = step_fn(key, state)
        return state, (info.acceptance_rate, info.is_accepted)

    state, (accept_probability, accepted) = jax.lax.scan(one_proposal, state, keys)
    info = SweepInfo(
        jnp.mean(accept_probability).astype(jnp.float32),
        jnp.sum(accepted, dtype=jnp.int32),
    )
    return state, info


def build_kernel(energy_fn: Callable) -> Callable:
    """Build one sweep of single-site Metropolis on ``exp(-energy_fn(s) / T)``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, SweepInfo)`` with an
        ``RWState`` from :func:`init`. The kernel first recomputes
        ``state.logdensity`` as ``-energy_fn(position) / temperature``. A state
        may therefore come from a run at another temperature, as it does after
        a replica exchange swap, without the stale log density entering the
        acceptance ratio. The temperature may be traced and vmapped.
    """

    def kernel(
        rng_key: jax.Array, state: RWState, temperature
    ) -> tuple[RWState, SweepInfo]:
        check_temperature(temperature)
        temperature = jnp.asarray(temperature, dtype=jnp.float32)

        def logdensity_fn(spins):
            return -energy_fn(spins).astype(jnp.float32) / temperature

        state = blackjax.mcmc.random_walk.init(state.position, logdensity_fn)
        algorithm = blackjax.rmh(logdensity_fn, flip_one_site)
        return sweep(rng_key, state, algorithm.step)

    return kernel
