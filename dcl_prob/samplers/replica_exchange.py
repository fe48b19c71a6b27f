"""Replica exchange (parallel tempering) over a temperature ladder.

The sampler runs one replica per temperature ``T_0, ..., T_{R-1}`` of the
ladder and targets the product ``prod_k p_k(x_k)`` with
``p_k(x) ~ exp(-E(x) / T_k)``. One step is:

1. one call of the local kernel on every replica at its ladder temperature
   (for the samplers of this package, one sweep);
2. swap proposals between ladder neighbours ``(k, k + 1)``: on even steps the
   pairs with even ``k``, on odd steps those with odd ``k``. A pair is
   swapped with probability ``min(1, exp((b_k - b_{k+1}) (E_k - E_{k+1})))``,
   where ``b = 1 / T`` and ``E_k`` is the energy of the state at position
   ``k``.

Why this is exact: the local kernel leaves every ``p_k`` invariant, so step 1
leaves the product invariant. The pairs of one parity are disjoint, so their
swaps are independent Metropolis moves. Each has that acceptance probability
because swapping multiplies the product density by
``exp((b_k - b_{k+1}) (E_k - E_{k+1}))`` and is its own inverse. So step 2
satisfies detailed balance with respect to the product for either parity, and
each step, hence any sequence of them, leaves the product invariant. The
deterministic alternation of the two parities makes the chain non-reversible
as a whole. Syed, Bouchard-Cote, Deligiannidis and Doucet (arXiv:1905.02939,
"Non-reversible parallel tempering") show that this scheme moves states along
the ladder faster than choosing the parity at random.

The states stay in ladder order: a swap exchanges the states of positions
``k`` and ``k + 1``, and ``replica_ids`` follows each walker along the ladder.
So ``state.replicas`` at position ``k`` is always a sample at ``T_k``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm

__all__ = [
    "ReplicaExchangeInfo",
    "ReplicaExchangeState",
    "build_kernel",
    "init",
    "replica_exchange",
]


class ReplicaExchangeState(NamedTuple):
    """State of one replica exchange chain with ``R`` replicas."""

    # pytree of local states. Every leaf has a leading axis of size R, and
    # position k along it is the state at temperature T_k of the ladder.
    replicas: Any
    # int32, shape (R,): label in 0..R-1 of the walker at each ladder
    # position. Labels move with the states when they are swapped.
    replica_ids: jax.Array
    # int32, shape (): number of steps taken. Its parity selects the pairs
    # whose swap is proposed in the next step.
    step_count: jax.Array


class ReplicaExchangeInfo(NamedTuple):
    """Information about one step."""

    # float32, shape (R - 1,): min(1, exp((b_k - b_{k+1}) (E_k - E_{k+1})))
    # for the pair (k, k + 1) after the local moves, computed for every pair
    # whether or not its swap was proposed, so its mean over a run estimates
    # the pair's swap acceptance rate with less noise than swap_accepted
    swap_acceptance_rate: jax.Array
    # bool, shape (R - 1,): whether the swap of pair (k, k + 1) was proposed
    swap_attempted: jax.Array
    # bool, shape (R - 1,): whether the swap of pair (k, k + 1) was accepted
    swap_accepted: jax.Array
    # info of the local kernel, for example its acceptance_rate. Every leaf
    # has a leading axis of size R in ladder order before the swaps.
    local_info: Any


def _check_temperatures(temperatures) -> None:
    """Reject a concrete ladder that is not 1-D, empty, or not positive and finite."""
    if isinstance(temperatures, jax.core.Tracer):
        if temperatures.ndim != 1:
            raise ValueError(
                f"temperatures of shape {temperatures.shape} are invalid: pass a "
                "1-D ladder with one temperature per replica"
            )
        return
    values = np.asarray(temperatures, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"temperatures of shape {values.shape} are invalid: pass a non-empty "
            "1-D ladder with one temperature per replica"
        )
    bad = ~(np.isfinite(values) & (values > 0))
    if np.any(bad):
        raise ValueError(
            f"temperature {float(values[bad][0])} at position {int(np.argmax(bad))} of "
            "the ladder is invalid: every temperature must be positive and finite "
            "(k_B = 1)"
        )


def _n_replicas(replicas) -> int:
    """Return the common leading axis size of the leaves of ``replicas``."""
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree.leaves(replicas)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"replica leaves with leading axis sizes {sorted(map(str, sizes))} are "
            "invalid: every leaf needs the same leading replica axis"
        )
    return sizes.pop()


def init(positions, init_fn: Callable) -> ReplicaExchangeState:
    """Create the state from ``positions`` with a leading replica axis.

    ``init_fn(position) -> state`` makes the local state of one replica and
    is vmapped over that axis. Position ``k`` starts at temperature ``T_k``.
    """
    replicas = jax.vmap(init_fn)(positions)
    n_replicas = _n_replicas(replicas)
    return ReplicaExchangeState(
        replicas,
        jnp.arange(n_replicas, dtype=jnp.int32),
        jnp.zeros((), jnp.int32),
    )


def _swap_permutation(accepted: jax.Array) -> jax.Array:
    """Return gather indices that exchange positions ``k`` and ``k + 1`` of
    every accepted pair. The accepted pairs must be disjoint."""
    n_replicas = accepted.shape[0] + 1
    accepted = accepted.astype(jnp.int32)
    from_above = jnp.zeros(n_replicas, jnp.int32).at[:-1].set(accepted)
    from_below = jnp.zeros(n_replicas, jnp.int32).at[1:].set(accepted)
    return jnp.arange(n_replicas, dtype=jnp.int32) + from_above - from_below


def build_kernel(local_kernel: Callable, energy_fn: Callable) -> Callable:
    """Build one replica exchange step.

    Args:
        local_kernel: ``local_kernel(rng_key, state, temperature) -> (state,
            info)``, leaving ``exp(-E / temperature)`` invariant for every
            temperature. Its state must not depend on the temperature it last
            ran at, or it must recompute that part on entry, because a swap
            moves a state to another temperature.
        energy_fn: ``energy_fn(state)``, the energy ``E`` of one local state as
            a float scalar.

    Returns:
        ``kernel(rng_key, state, temperatures) -> (state, info)`` with a
        :class:`ReplicaExchangeState` and :class:`ReplicaExchangeInfo`.
        ``temperatures`` (shape ``(R,)``) may be traced and vmapped.
    """

    def kernel(
        rng_key: jax.Array, state: ReplicaExchangeState, temperatures
    ) -> tuple[ReplicaExchangeState, ReplicaExchangeInfo]:
        _check_temperatures(temperatures)
        temperatures = jnp.asarray(temperatures, dtype=jnp.float32)
        n_replicas = temperatures.shape[0]
        if _n_replicas(state.replicas) != n_replicas:
            raise ValueError(
                f"{_n_replicas(state.replicas)} replicas are invalid for a ladder "
                f"of {n_replicas} temperatures: pass one position per temperature "
                "to init"
            )
        local_key, swap_key = jax.random.split(rng_key)

        local_keys = jax.random.split(local_key, n_replicas)
        replicas, local_info = jax.vmap(local_kernel)(
            local_keys, state.replicas, temperatures
        )

        energies = jax.vmap(energy_fn)(replicas).astype(jnp.float32)
        betas = 1.0 / temperatures
        log_ratio = (betas[:-1] - betas[1:]) * (energies[:-1] - energies[1:])
        acceptance_rate = jnp.exp(jnp.minimum(log_ratio, 0.0))
        pair = jnp.arange(n_replicas - 1, dtype=jnp.int32)
        attempted = pair % 2 == state.step_count % 2
        log_uniform = jnp.log(jax.random.uniform(swap_key, (n_replicas - 1,)))
        accepted = attempted & (log_uniform < log_ratio)

        permutation = _swap_permutation(accepted)
        replicas = jax.tree.map(lambda leaf: leaf[permutation], replicas)
        new_state = ReplicaExchangeState(
            replicas, state.replica_ids[permutation], state.step_count + 1
        )
        info = ReplicaExchangeInfo(acceptance_rate, attempted, accepted, local_info)
        return new_state, info

    return kernel


def replica_exchange(
    kernel: Callable, init_fn: Callable, energy_fn: Callable, temperatures
) -> SamplingAlgorithm:
    """Replica exchange (parallel tempering) as a BlackJAX ``SamplingAlgorithm``.

    Args:
        kernel: local kernel ``kernel(rng_key, state, temperature) -> (state,
            info)``, for example ``checkerboard.build_kernel(model)``.
            :func:`build_kernel` states its contract.
        init_fn: ``init_fn(position) -> state`` for one replica.
        energy_fn: ``energy_fn(state)``, the energy of one local state, for
            example ``lambda state: state.energy``.
        temperatures: the ladder ``(T_0, ..., T_{R-1})``, usually increasing.
            Swaps are proposed between neighbours in this order.

    ``init(positions)`` takes positions with a leading axis of size ``R``.
    ``step(rng_key, state)`` does one local move of every replica and one
    round of swaps. Use ``jax.vmap`` over a further leading chain axis for
    several independent chains.

    Raises:
        ValueError: if ``temperatures`` is not a non-empty 1-D array of positive,
            finite values, or (from ``init``) if the number of positions is not
            the number of temperatures.
    """
    _check_temperatures(temperatures)
    n_replicas = int(np.shape(temperatures)[0])
    step_kernel = build_kernel(kernel, energy_fn)

    def init_algorithm(positions, rng_key: jax.Array | None = None):
        del rng_key
        state = init(positions, init_fn)
        if _n_replicas(state.replicas) != n_replicas:
            raise ValueError(
                f"{_n_replicas(state.replicas)} positions are invalid for a ladder "
                f"of {n_replicas} temperatures: pass positions with a leading axis "
                f"of size {n_replicas}"
            )
        return state

    def step_fn(rng_key: jax.Array, state: ReplicaExchangeState):
        return step_kernel(rng_key, state, temperatures)

    return SamplingAlgorithm(init_algorithm, step_fn)
