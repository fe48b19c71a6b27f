"""Checkerboard Metropolis sampler for the Ising model, in BlackJAX's shape.

One step is one full sweep: a Metropolis flip proposal on every site of the
even sublattice at once, then on every site of the odd sublattice. Sites of
one sublattice share no bond, so their flips are independent single-site
Metropolis updates and each half-sweep keeps the Boltzmann distribution
invariant. That holds only for even ``L``, because for odd ``L`` the two
sublattices touch across the periodic boundary.

A flip with energy change ``dE`` is accepted with the Metropolis probability
``min(1, exp(-dE / T))``, except that ``dE = 0`` is accepted with probability
1/2. Consider a configuration in which every site has zero local field, for
example diagonal stripes of width 2 when ``L`` is a multiple of 4. With
probability 1 at ``dE = 0`` it flips as a whole every sweep and never leaves
that two-state cycle. In one test run, 1 of 64 random starts on a 4 x 4
lattice at T = 2.269 fell into it.
Detailed balance only needs equal acceptance in both directions of a
``dE = 0`` move, so 1/2 keeps the Boltzmann distribution invariant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm

from dcl_prob.hamiltonians import IsingModel
from dcl_prob.lattice import check_lattice_size, checkerboard_mask

__all__ = [
    "CheckerboardInfo",
    "CheckerboardState",
    "build_kernel",
    "checkerboard_metropolis",
    "init",
]


class CheckerboardState(NamedTuple):
    """State of one checkerboard Metropolis chain."""

    spins: jax.Array  # int8, shape (L, L), values -1/+1
    energy: jax.Array  # float32, shape (), total energy H(spins)


class CheckerboardInfo(NamedTuple):
    """Information about one sweep."""

    # float32, shape (): mean acceptance probability over the L * L flip
    # proposals of the sweep
    acceptance_rate: jax.Array
    # int32, shape (): number of spins flipped in the sweep
    n_flipped: jax.Array


def _check_even_lattice(spins: jax.Array) -> int:
    """Check that ``spins`` is one ``(L, L)`` lattice with even ``L``."""
    if spins.ndim != 2 or spins.shape[0] != spins.shape[1]:
        raise ValueError(
            f"spins of shape {spins.shape} are invalid: one chain of the "
            "checkerboard sampler is a square (L, L) array; use jax.vmap over "
            "a leading chain axis"
        )
    L = check_lattice_size(spins.shape[0])
    if L % 2:
        raise ValueError(
            f"L={L} is invalid for the checkerboard sampler: for odd L the two "
            "sublattices share bonds across the periodic boundary, so the "
            "sweep would not keep the Boltzmann distribution invariant; use an "
            "even L or the Wolff sampler"
        )
    return L


def check_temperature(temperature) -> None:
    """Reject a concrete temperature that is not positive and finite."""
    if isinstance(temperature, jax.core.Tracer):
        return
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"temperature={temperature!r} is invalid: it must be a positive, "
            "finite number (k_B = 1)"
        )


def init(position: jax.Array, model: IsingModel) -> CheckerboardState:
    """Create the chain state of the spins ``position`` of shape ``(L, L)``."""
    spins = jnp.asarray(position, dtype=jnp.int8)
    _check_even_lattice(spins)
    return CheckerboardState(spins, model.energy(spins).astype(jnp.float32))


def build_kernel(model: IsingModel) -> Callable:
    """Build the checkerboard Metropolis sweep for ``model``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, info)``. The
        temperature is an argument, not a constant, so that it may be traced
        and vmapped (for example over the replicas of parallel tempering).
    """

    def half_sweep(spins, uniforms, temperature, mask):
        delta_energy = model.flip_energy_change(spins)
        accept_probability = jnp.where(
            delta_energy == 0,
            0.5,
            jnp.minimum(1.0, jnp.exp(-delta_energy / temperature)),
        )
        flip = mask & (uniforms < accept_probability)
        spins = jnp.where(flip, -spins, spins)
        accept_sum = jnp.sum(jnp.where(mask, accept_probability, 0.0))
        return spins, accept_sum, jnp.sum(flip, dtype=jnp.int32)

    def kernel(
        rng_key: jax.Array, state: CheckerboardState, temperature
    ) -> tuple[CheckerboardState, CheckerboardInfo]:
        L = _check_even_lattice(state.spins)
        temperature = jnp.asarray(temperature, dtype=jnp.float32)
        uniforms = jax.random.uniform(rng_key, (2, L, L), dtype=jnp.float32)

        spins = state.spins
        accept_sum = jnp.zeros((), jnp.float32)
        n_flipped = jnp.zeros((), jnp.int32)
        for parity in (0, 1):
            mask = jnp.asarray(checkerboard_mask(L, parity))
            spins, accept, flipped = half_sweep(
                spins, uniforms[parity], temperature, mask
            )
            accept_sum = accept_sum + accept
            n_flipped = n_flipped + flipped

        # The energy is recomputed, not accumulated from the flips, so that no
        # float32 rounding error builds up over a long chain.
        energy = model.energy(spins).astype(jnp.float32)
        info = CheckerboardInfo(accept_sum / (L * L), n_flipped)
        return CheckerboardState(spins, energy), info

    return kernel


def checkerboard_metropolis(model: IsingModel, temperature: float) -> SamplingAlgorithm:
    """Checkerboard Metropolis for ``model`` at ``temperature`` (k_B = 1).

    ``step(rng_key, state)`` does one full sweep of one chain; use
    ``jax.vmap`` over a leading chain axis for several chains. ``init``
    accepts spins of shape ``(L, L)`` with even ``L``.

    Raises:
        ValueError: if ``temperature`` is not positive and finite, or (from
            ``init`` and ``step``) if ``L`` is odd.
    """
    check_temperature(temperature)
    kernel = build_kernel(model)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None):
        del rng_key
        return init(position, model)

    def step_fn(rng_key: jax.Array, state: CheckerboardState):
        return kernel(rng_key, state, temperature)

    return SamplingAlgorithm(init_fn, step_fn)
