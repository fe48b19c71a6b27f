"""Checkerboard Metropolis and heat-bath samplers for the lattice models.

The samplers are written in BlackJAX's shape. One step is one full sweep. The
sites are split into colour classes of a proper colouring of the interaction
graph, so that no two sites of one class share a bond. All sites of a class
are updated at once, then the next class. Because the sites of one class
share no bond, their simultaneous updates are independent single-site
updates, each of which keeps the Boltzmann distribution invariant, and so
does the sweep. :func:`site_colouring` gives the classes: for nearest
neighbours the two sublattices ``(i + j) % 2`` for even ``L`` and three
colours for odd ``L``, where those sublattices touch across the periodic
boundary; with diagonal bonds too, 4 colours for even ``L`` and 9 for odd
``L``.

Two update rules are available:

- ``"metropolis"`` (:class:`~dcl_prob.hamiltonians.IsingModel` only): a flip
  with energy change ``dE`` is accepted with probability
  ``min(1, exp(-dE / T))``, except that ``dE = 0`` is accepted
  with probability 1/2. Consider a configuration in which every site has zero
  local field, for example diagonal stripes of width 2 when ``L`` is a
  multiple of 4. With probability 1 at ``dE = 0`` it flips as a whole every
  sweep and never leaves that two-state cycle. In one test run, 1 of 64
  random starts on a 4 x 4 lattice at T = 2.269 fell into it. Detailed
  balance only needs equal acceptance in both directions of a ``dE = 0``
  move, so 1/2 keeps the Boltzmann distribution invariant.
- ``"heat_bath"`` (every model of :mod:`dcl_prob.hamiltonians`): each site
  is drawn from its exact conditional distribution given its neighbours,
  ``p(s_i = a | rest) ~ exp(-site_energies(s)[i, a] / T)``. For the Ising
  model that is a flip with probability ``1 / (1 + exp(dE / T))``, 1/2 at
  ``dE = 0``, so the zero-field cycle cannot trap a chain either.
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
from dcl_prob.lattice import DIAGONAL_OFFSETS, NEAREST_OFFSETS, check_lattice_size

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

    # int8, shape (L, L): -1/+1 spins, or states 0..q-1 of a Potts or clock model
    spins: jax.Array
    energy: jax.Array  # float32, shape (), total energy H(spins)


class CheckerboardInfo(NamedTuple):
    """Information about one sweep."""

    # float32, shape (): mean over the L * L sites of the probability that the
    # site's state changes (the Metropolis acceptance probability, or the
    # heat-bath probability of the other states)
    acceptance_rate: jax.Array
    # int32, shape (): number of sites whose state changed in the sweep
    n_flipped: jax.Array


@functools.lru_cache(maxsize=64)
def site_colouring(L: int, offsets: tuple = NEAREST_OFFSETS) -> np.ndarray:
    """Return a proper colouring of the periodic ``L x L`` lattice, int8 ``(L, L)``.

    No two sites that interact through a bond direction of ``offsets`` get
    the same colour. ``offsets`` are pairs ``(di, dj)`` as in
    ``model.interaction_offsets``; nearest-neighbour and diagonal bonds are
    supported.

    Nearest neighbours only: even ``L`` gets the two colours ``(i + j) % 2``.
    Odd ``L`` gets the three colours ``(f(i) + f(j)) % 3``, where
    ``f(x) = x % 2`` for ``x < L - 1`` and ``f(L - 1) = 2``. ``f`` is a
    proper colouring of the ring of ``L`` sites (0, 1, ..., 0, 1, 2, and the
    2 also differs from ``f(0) = 0``). Two neighbours differ in one
    coordinate by one step around the ring, so that coordinate's ``f``
    changes by 1 or 2 mod 3 while the other term is unchanged, and their
    colours differ. The odd torus contains odd cycles, so it has no
    2-colouring, and three colours are the minimum.

    With diagonal bonds: the colour is ``n g(i) + g(j)``, where ``g`` is a
    proper colouring of the ring with ``n`` colours (``x % 2`` for even
    ``L``, ``f`` above for odd ``L``). Two interacting sites differ by one
    step in at least one coordinate, so they differ in that coordinate's
    ``g`` and get different colours: 4 colours for even ``L``, 9 for odd
    ``L``. For ``L = 2`` and ``L = 3`` every pair of sites interacts, so
    these counts are the minimum there.

    Raises:
        ValueError: if ``L`` is not an integer of at least 2, or ``offsets``
            contains a bond longer than one diagonal step.
    """
    L = check_lattice_size(L)
    offsets = tuple(tuple(int(d) for d in offset) for offset in offsets)
    known = NEAREST_OFFSETS + DIAGONAL_OFFSETS
    unknown = [
        offset
        for offset in offsets
        if offset not in known and (-offset[0], -offset[1]) not in known
    ]
    if unknown:
        raise ValueError(
            f"bond offsets {unknown} are invalid for the checkerboard samplers: "
            "only nearest-neighbour and diagonal bonds are supported"
        )
    i, j = np.indices((L, L))
    ring = np.arange(L) % 2
    if L % 2:
        ring[-1] = 2
    n_ring_colours = 2 if L % 2 == 0 else 3
    if all(offset in NEAREST_OFFSETS for offset in offsets):
        colours = (ring[i] + ring[j]) % n_ring_colours
    else:
        colours = n_ring_colours * ring[i] + ring[j]
    for offset in set(offsets) | set(NEAREST_OFFSETS):
        # The proof above, checked on the actual array.
        assert not np.any(colours == np.roll(colours, offset, axis=(0, 1)))
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
    """Reject a concrete temperature that is not positive and finite.

    A traced temperature (inside ``jit`` or ``vmap``) is not checked.

    Args:
        temperature: temperature in units of J/k_B.

    Raises:
        ValueError: if ``temperature`` is concrete and not finite and > 0.
    """
    if isinstance(temperature, jax.core.Tracer):
        return
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"temperature={temperature!r} is invalid: it must be a positive, "
            "finite number (k_B = 1)"
        )


def init(position: jax.Array, model) -> CheckerboardState:
    """Create the chain state of the spins ``position`` of shape ``(L, L)``.

    ``model`` is any model of :mod:`dcl_prob.hamiltonians`.
    """
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


def build_kernel(model, rule: str = "metropolis") -> Callable:
    """Build the checkerboard sweep for ``model`` with the update ``rule``.

    Args:
        model: any model of :mod:`dcl_prob.hamiltonians`. The Ising model
            uses its flip energy change; the others draw each site from
            ``softmax(-model.site_energies(s) / T)``.
        rule: ``"metropolis"`` (Ising model only) or ``"heat_bath"``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, info)``. The
        temperature is an argument, not a constant, so that it may be traced
        and vmapped (for example over the replicas of parallel tempering).

    Raises:
        ValueError: if ``rule`` is not one of :data:`UPDATE_RULES`, or is
            ``"metropolis"`` for a model other than the Ising model.
    """
    if rule not in UPDATE_RULES:
        raise ValueError(
            f"rule={rule!r} is invalid: use one of {', '.join(UPDATE_RULES)}"
        )
    if not isinstance(model, IsingModel):
        if rule != "heat_bath":
            raise ValueError(
                f"rule={rule!r} is invalid for the {model.name!r} model: "
                "checkerboard Metropolis is implemented for the Ising model "
                "only; use rule='heat_bath' (checkerboard_heat_bath)"
            )
        return _build_heat_bath_kernel(model)

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


def _build_heat_bath_kernel(model) -> Callable:
    """Build the heat-bath sweep of any model from its ``site_energies``."""
    values = jnp.asarray(model.state_values, dtype=jnp.int8)
    offsets = tuple(model.interaction_offsets)

    def colour_update(carry, colour_input):
        spins, probability_sum, n_changed, temperature = carry
        mask, key = colour_input
        logits = -model.site_energies(spins).astype(jnp.float32) / temperature
        drawn = values[jax.random.categorical(key, logits, axis=-1)]
        new_spins = jnp.where(mask, drawn, spins)

        current = spins[..., None] == values
        log_p_current = jnp.sum(
            jnp.where(current, jax.nn.log_softmax(logits, axis=-1), 0.0), axis=-1
        )
        change_probability = -jnp.expm1(log_p_current)
        probability_sum += jnp.sum(jnp.where(mask, change_probability, 0.0))
        n_changed += jnp.sum(new_spins != spins, dtype=jnp.int32)
        return (new_spins, probability_sum, n_changed, temperature), None

    def kernel(
        rng_key: jax.Array, state: CheckerboardState, temperature
    ) -> tuple[CheckerboardState, CheckerboardInfo]:
        L = _check_square_lattice(state.spins)
        colours = site_colouring(L, offsets)
        n_colours = int(colours.max()) + 1
        masks = jnp.asarray(colours[None] == np.arange(n_colours)[:, None, None])
        temperature = jnp.asarray(temperature, dtype=jnp.float32)
        keys = jax.random.split(rng_key, n_colours)

        # A scan over the colour classes, not an unrolled loop, so that the
        # compiled program contains one class update: up to 9 classes with
        # diagonal bonds.
        carry = (state.spins, jnp.float32(0.0), jnp.int32(0), temperature)
        (spins, probability_sum, n_changed, _), _ = jax.lax.scan(
            colour_update, carry, (masks, keys)
        )

        # Recomputed, as in the Ising kernel, so that no rounding error
        # builds up.
        energy = model.energy(spins).astype(jnp.float32)
        info = CheckerboardInfo(probability_sum / (L * L), n_changed)
        return CheckerboardState(spins, energy), info

    return kernel


def _checkerboard(model, temperature, rule: str) -> SamplingAlgorithm:
    check_temperature(temperature)
    kernel = build_kernel(model, rule)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None):
        del rng_key
        return init(position, model)

    def step_fn(rng_key: jax.Array, state: CheckerboardState):
        return kernel(rng_key, state, temperature)

    return SamplingAlgorithm(init_fn, step_fn)


def checkerboard_metropolis(model: IsingModel, temperature: float) -> SamplingAlgorithm:
    """Checkerboard Metropolis for the Ising ``model`` at ``temperature`` (k_B = 1).

    ``step(rng_key, state)`` does one full sweep of one chain; use
    ``jax.vmap`` over a leading chain axis for several chains. ``init``
    accepts spins of shape ``(L, L)`` for any ``L >= 2``.

    Raises:
        ValueError: if ``temperature`` is not positive and finite, if
            ``model`` is not an :class:`IsingModel`, or (from ``init`` and
            ``step``) if the spins are not one square lattice.
    """
    return _checkerboard(model, temperature, "metropolis")


def checkerboard_heat_bath(model, temperature: float) -> SamplingAlgorithm:
    """Checkerboard heat bath (Glauber dynamics) for ``model`` at ``temperature``.

    ``model`` is any model of :mod:`dcl_prob.hamiltonians`. Every site, one
    colour class at a time, is drawn from its conditional distribution
    ``p(s_i = a | rest) ~ exp(-site_energies(s)[i, a] / T)``; for the Ising
    model that sets it to +1 with probability ``1 / (1 + exp(-2 h_i / T))``,
    where ``h_i`` is its local field. One ``step`` is one full sweep of one
    chain. ``init`` accepts states of shape ``(L, L)`` for any ``L >= 2``
    (the spin glass: the ``L`` of its bonds).

    Raises:
        ValueError: if ``temperature`` is not positive and finite, or (from
            ``init`` and ``step``) if the spins are not one square lattice.
    """
    return _checkerboard(model, temperature, "heat_bath")
