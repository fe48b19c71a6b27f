"""Wolff single-cluster sampler for the Ising model, in BlackJAX's shape.

One step is one cluster flip. Every bond whose two spins satisfy it
(``J s_i s_j > 0``) is drawn open with probability ``1 - exp(-2 |J| / T)``.
The cluster is the connected component of the open bonds that contains a
uniformly chosen seed site. All of its spins flip, and the flip is always
accepted. Drawing all bonds at once and taking the component of the seed
gives the same cluster distribution as growing it bond by bond, because the
growth tests each bond at most once and the cluster depends on no other bond.

Bonds are indexed by their site and direction (right and down neighbour), so
for ``L = 2``, where both the left and the right neighbour of a site are the
same site, the two bonds between a pair are drawn independently, matching the
doubled coupling that :meth:`IsingModel.energy` counts. The sampler is exact
for every ``L >= 2``, odd ``L`` included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm

from dcl_prob.hamiltonians import IsingModel
from dcl_prob.lattice import check_lattice_size
from dcl_prob.samplers.checkerboard import check_temperature

__all__ = ["WolffInfo", "WolffState", "build_kernel", "init", "wolff"]


class WolffState(NamedTuple):
    """State of one Wolff chain."""

    spins: jax.Array  # int8, shape (L, L), values -1/+1
    energy: jax.Array  # float32, shape (), total energy H(spins)


class WolffInfo(NamedTuple):
    """Information about one cluster flip."""

    cluster_size: jax.Array  # int32, shape (): number of spins flipped
    # int32, shape (): growth iterations until the cluster stopped changing
    n_growth_steps: jax.Array


def _check_square_lattice(spins: jax.Array) -> int:
    if spins.ndim != 2 or spins.shape[0] != spins.shape[1]:
        raise ValueError(
            f"spins of shape {spins.shape} are invalid: one chain of the Wolff "
            "sampler is a square (L, L) array; use jax.vmap over a leading "
            "chain axis"
        )
    return check_lattice_size(spins.shape[0])


def _check_model(model: IsingModel) -> None:
    if not isinstance(model, IsingModel):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} is invalid for the Wolff "
            "sampler, which is "
            "implemented for the Ising model only; use the heat-bath sampler, "
            "or Swendsen-Wang for the Potts model"
        )
    if model.h != 0:
        raise ValueError(
            f"h={model.h!r} is invalid for the Wolff sampler: a cluster flip "
            "changes the magnetization, so with a field it would need an "
            "acceptance step; use h=0 or the checkerboard Metropolis sampler"
        )


def init(position: jax.Array, model: IsingModel) -> WolffState:
    """Create the chain state of the spins ``position`` of shape ``(L, L)``."""
    _check_model(model)
    spins = jnp.asarray(position, dtype=jnp.int8)
    _check_square_lattice(spins)
    return WolffState(spins, model.energy(spins).astype(jnp.float32))


def _grow(cluster, open_right, open_down):
    """Add to ``cluster`` every site joined to it by one open bond."""
    grown = cluster | jnp.roll(cluster & open_right, 1, axis=1)
    grown = grown | (jnp.roll(cluster, -1, axis=1) & open_right)
    grown = grown | jnp.roll(cluster & open_down, 1, axis=0)
    return grown | (jnp.roll(cluster, -1, axis=0) & open_down)


def build_kernel(model: IsingModel) -> Callable:
    """Build the Wolff cluster flip for ``model``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, info)``. The
        temperature may be traced and vmapped.

    Raises:
        ValueError: if ``model.h`` is not zero.
    """
    _check_model(model)

    def kernel(
        rng_key: jax.Array, state: WolffState, temperature
    ) -> tuple[WolffState, WolffInfo]:
        L = _check_square_lattice(state.spins)
        temperature = jnp.asarray(temperature, dtype=jnp.float32)
        site_key, bond_key = jax.random.split(rng_key)
        spins = state.spins

        # Bond (i, j)-(i, j+1) is stored at (i, j) of the "right" arrays and
        # bond (i, j)-(i+1, j) at (i, j) of the "down" arrays.
        coupling = jnp.float32(model.J)
        bond_probability = -jnp.expm1(-2.0 * jnp.abs(coupling) / temperature)
        uniforms = jax.random.uniform(bond_key, (2, L, L), dtype=jnp.float32)
        x = spins.astype(jnp.float32)
        satisfied_right = coupling * x * jnp.roll(x, -1, axis=1) > 0
        satisfied_down = coupling * x * jnp.roll(x, -1, axis=0) > 0
        open_right = satisfied_right & (uniforms[0] < bond_probability)
        open_down = satisfied_down & (uniforms[1] < bond_probability)

        seed_site = jax.random.randint(site_key, (), 0, L * L)
        cluster = (jnp.arange(L * L) == seed_site).reshape(L, L)

        def not_converged(carry):
            _, changed, _ = carry
            return changed

        def grow_step(carry):
            cluster, _, n_steps = carry
            grown = _grow(cluster, open_right, open_down)
            return grown, jnp.any(grown != cluster), n_steps + 1

        cluster, _, n_steps = jax.lax.while_loop(
            not_converged, grow_step, (cluster, jnp.bool_(True), jnp.int32(0))
        )

        spins = jnp.where(cluster, -spins, spins)
        # Recomputed rather than updated by the cluster's boundary bonds, so
        # that no float32 rounding error builds up over a long chain.
        energy = model.energy(spins).astype(jnp.float32)
        info = WolffInfo(jnp.sum(cluster, dtype=jnp.int32), n_steps)
        return WolffState(spins, energy), info

    return kernel


def wolff(model: IsingModel, temperature: float) -> SamplingAlgorithm:
    """Wolff cluster sampler for ``model`` at ``temperature`` (k_B = 1).

    ``step(rng_key, state)`` flips one cluster of one chain; use ``jax.vmap``
    over a leading chain axis for several chains. ``init`` accepts spins of
    shape ``(L, L)`` for any ``L >= 2``. A negative ``J`` (antiferromagnet)
    is handled by opening bonds between antiparallel spins.

    Raises:
        ValueError: if ``model.h`` is not zero or ``temperature`` is not
            positive and finite.
    """
    check_temperature(temperature)
    kernel = build_kernel(model)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None):
        del rng_key
        return init(position, model)

    def step_fn(rng_key: jax.Array, state: WolffState):
        return kernel(rng_key, state, temperature)

    return SamplingAlgorithm(init_fn, step_fn)
