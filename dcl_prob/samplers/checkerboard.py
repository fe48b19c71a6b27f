"""Checkerboard Metropolis and heat-bath samplers for the Ising model.

The samplers are written in BlackJAX's shape. One step is one full sweep. The
sites are split into colour classes of a proper colouring of the periodic
lattice, so that no two sites of one class are nearest neighbours. All sites
of a class are updated at once, then the next class. Because the sites of one
class share no bond, their simultaneous updates are independent single-site
updates, each of which keeps the Boltzmann distribution invariant, and so
does the sweep. For even ``L`` the classes are the two sublattices
``(i + j) % 2``. For odd ``L`` those two sublattices touch across the
periodic boundary, so :func:`site_colouring` uses three colours instead.

Two update rules are available:

- ``"metropolis"``: a flip with energy change ``dE`` is accepted with
  probability ``min(1, exp(-dE / T))``, except that ``dE = 0`` is accepted
  with probability 1/2. Consider a configuration in which every site has zero
  local field, for example diagonal stripes of width 2 when ``L`` is a
  multiple of 4. With probability 1 at ``dE = 0`` it flips as a whole every
  sweep and never leaves that two-state cycle. In one test run, 1 of 64
  random starts on a 4 x 4 lattice at T = 2.269 fell into it. Detailed
  balance only needs equal acceptance in both directions of a ``dE = 0``
  move, so 1/2 keeps the Boltzmann distribution invariant.
- ``"heat_bath"``: each spin is drawn from its exact conditional
  distribution given its neighbours, so it flips with probability
  ``1 / (1 + exp(dE / T))``. That is 1/2 at ``dE = 0``, so the zero-field
  cycle cannot trap a chain either.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm

from dcl_prob.hamiltonians import IsingModel
from dcl_prob.lattice import check_lattice_size

__all__ = [
    "UPDATE_RULES",
    "CheckerboardInfo",
    "CheckerboardState",
    "build_kernel",
    "check_temperature",
    "checkerboard_heat_bath",
    "checkerboard_metropolis",
    "init",
    "site_colouring",
]

UPDATE_RULES = ("metropolis", "heat_bath")


class CheckerboardState(NamedTuple):
    """State of one checkerboard chain."""

    spins: jax.Array  # int8, shape (L, L), values -1/+1
    energy: jax.Array  # float32, shape (), total energy H(spins)


class CheckerboardInfo(NamedTuple):
    """Information about one sweep."""

    # float32, shape (): mean over the L * L sites of the probability that the
    # site's spin flips (the Metropolis acceptance probability, or the
    # heat-bath probability of the opposite spin)
    acceptance_rate: jax.Array
    # int32, shape (): number of spins flipped in the sweep
    n_flipped: jax.Array


@functools.lru_cache(maxsize=64)
def site_colouring(L: int) -> np.ndarray:
    """Return a proper colouring of the periodic ``L x L`` lattice, int8 ``(L, L)``.

    No two nearest neighbours get the same colour. Even ``L`` gets the two
    colours ``(i + j) % 2``. Odd ``L`` gets the three colours
    ``(f(i) + f(j)) % 3``, where ``f(x) = x % 2`` for ``x < L - 1`` and
    ``f(L - 1) = 2``. ``f`` is a proper colouring of the ring of ``L`` sites
    (0, 1, ..., 0, 1, 2, and the 2 also differs from ``f(0) = 0``). Two
    neighbours differ in one coordinate by one step around the ring, so that
    coordinate's ``f`` changes by 1 or 2 mod 3 while the other term is
    unchanged, and their colours differ. The odd torus contains odd cycles,
    so it has no 2-colouring, and three colours are the minimum.

    Raises:
        ValueError: if ``L`` is not an integer of at least 2.
    """
    L = check_lattice_size(L)
    i, j = np.indices((L, L))
    if L % 2 == 0:
        colours = (i + j) % 2
    else:
        ring = np.arange(L) % 2
        ring[-1] = 2
        colours = (ring[i] + ring[j]) % 3
    for axis in (0, 1):
        # The proof above, checked on the actual array.
        assert not np.any(colours == np.roll(colours, 1, axis=axis))
    colours = colours.astype(np.int8)
    colours.setflags(write=False)
    return colours


def _check_square_lattice(spins: jax.Array) -> int:
    """Check that ``spins`` is one ``(L, L)`` lattice and return ``L``."""
    if spins.ndim != 2 or spins.shape[0] != spins.shape[1]:
        raise ValueError(
            f"spins of shape {spins.shape} are invalid: one chain of the "
            "checkerboard sampler is a square (L, L) array; use jax.vmap over "
            "a leading chain axis"
        )
    return check_lattice_size(spins.shape[0])


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
    _check_square_lattice(spins)
    return CheckerboardState(spins, model.energy(spins).astype(jnp.float32))


def _flip_probability(delta_energy, temperature, rule: str):
    """Probability that a site flips, given its flip energy change."""
    if rule == "heat_bath":
        return jax.nn.sigmoid(-delta_energy / temperature)
    return jnp.where(
        delta_energy == 0,
        0.5,
        jnp.minimum(1.0, jnp.exp(-delta_energy / temperature)),
    )


def build_kernel(model: IsingModel, rule: str = "metropolis") -> Callable:
    """Build the checkerboard sweep for ``model`` with the update ``rule``.

    Args:
        model: the Ising model.
        rule: ``"metropolis"`` or ``"heat_bath"``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, info)``. The
        temperature is an argument, not a constant, so that it may be traced
        and vmapped (for example over the replicas of parallel tempering).

    Raises:
        ValueError: if ``rule`` is not one of :data:`UPDATE_RULES`.
    """
    if rule not in UPDATE_RULES:
        raise ValueError(
            f"rule={rule!r} is invalid: use one of {', '.join(UPDATE_RULES)}"
        )

    def colour_update(spins, uniforms, temperature, mask):
        flip_probability = _flip_probability(
            model.flip_energy_change(spins), temperature, rule
        )
        flip = mask & (uniforms < flip_probability)
        spins = jnp.where(flip, -spins, spins)
        probability_sum = jnp.sum(jnp.where(mask, flip_probability, 0.0))
        return spins, probability_sum, jnp.sum(flip, dtype=jnp.int32)

    def kernel(
        rng_key: jax.Array, state: CheckerboardState, temperature
    ) -> tuple[CheckerboardState, CheckerboardInfo]:
        L = _check_square_lattice(state.spins)
        colours = site_colouring(L)
        n_colours = int(colours.max()) + 1
        temperature = jnp.asarray(temperature, dtype=jnp.float32)
        uniforms = jax.random.uniform(rng_key, (n_colours, L, L), dtype=jnp.float32)

        spins = state.spins
        probability_sum = jnp.zeros((), jnp.float32)
        n_flipped = jnp.zeros((), jnp.int32)
        for colour in range(n_colours):
            mask = jnp.asarray(colours == colour)
            spins, probability, flipped = colour_update(
                spins, uniforms[colour], temperature, mask
            )
            probability_sum = probability_sum + probability
            n_flipped = n_flipped + flipped

        # The energy is recomputed, not accumulated from the flips, so that no
        # float32 rounding error builds up over a long chain.
        energy = model.energy(spins).astype(jnp.float32)
        info = CheckerboardInfo(probability_sum / (L * L), n_flipped)
        return CheckerboardState(spins, energy), info

    return kernel


def _checkerboard(model: IsingModel, temperature, rule: str) -> SamplingAlgorithm:
    check_temperature(temperature)
    kernel = build_kernel(model, rule)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None):
        del rng_key
        return init(position, model)

    def step_fn(rng_key: jax.Array, state: CheckerboardState):
        return kernel(rng_key, state, temperature)

    return SamplingAlgorithm(init_fn, step_fn)


def checkerboard_metropolis(model: IsingModel, temperature: float) -> SamplingAlgorithm:
    """Checkerboard Metropolis for ``model`` at ``temperature`` (k_B = 1).

    ``step(rng_key, state)`` does one full sweep of one chain; use
    ``jax.vmap`` over a leading chain axis for several chains. ``init``
    accepts spins of shape ``(L, L)`` for any ``L >= 2``.

    Raises:
        ValueError: if ``temperature`` is not positive and finite, or (from
            ``init`` and ``step``) if the spins are not one square lattice.
    """
    return _checkerboard(model, temperature, "metropolis")


def checkerboard_heat_bath(model: IsingModel, temperature: float) -> SamplingAlgorithm:
    """Checkerboard heat bath (Glauber dynamics) for ``model`` at ``temperature``.

    Every site, one colour class at a time, is set to +1 with probability
    ``1 / (1 + exp(-2 h_i / T))``, where ``h_i`` is its local field, so one
    ``step`` is one full sweep of one chain. ``init`` and the errors are those
    of :func:`checkerboard_metropolis`.
    """
    return _checkerboard(model, temperature, "heat_bath")
