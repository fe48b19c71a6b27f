"""Swendsen-Wang cluster sampler for the ferromagnetic Potts model.

The sampler is written in BlackJAX's shape. One step is one Swendsen-Wang
update of the whole lattice:

1. every bond whose two sites are in the same state is drawn open with
   probability ``p = 1 - exp(-J / T)``, every other bond is closed;
2. the clusters are the connected components of the open bonds;
3. every cluster independently takes a new state, uniform over the ``q``
   states, and the update is always accepted.

This is a Gibbs sweep of the Edwards-Sokal joint distribution of states and
bonds, whose marginal on the states is the Boltzmann distribution of
``H = -J sum_<ij> delta(s_i, s_j)`` with ``J > 0``, so the update leaves it
invariant. As in :mod:`dcl_prob.samplers.wolff`, bonds are indexed by their
site and direction (right and down), so for ``L = 2`` the two bonds between a
pair of sites are drawn independently, matching the doubled coupling that
:meth:`PottsModel.energy` counts.

The components come from label propagation, which runs under ``jax.jit``:
every site starts with its own flat index as label. Each iteration sets every
label to the minimum over the site and its open-bond neighbours, then jumps
every label to the label of the site it points at (``label = label[label]``).
A label is always a site of the same cluster and never above the site's own
index, so the jump keeps those facts and only speeds up convergence. At the
fixed point the label of every site is the smallest index of its cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm

from dcl_prob.hamiltonians import PottsModel
from dcl_prob.lattice import check_lattice_size
from dcl_prob.samplers.checkerboard import check_temperature

__all__ = [
    "SwendsenWangInfo",
    "SwendsenWangState",
    "build_kernel",
    "cluster_labels",
    "init",
    "swendsen_wang",
]


class SwendsenWangState(NamedTuple):
    """State of one Swendsen-Wang chain."""

    spins: jax.Array  # int8, shape (L, L), Potts states 0..q-1
    energy: jax.Array  # float32, shape (), total energy H(spins)


class SwendsenWangInfo(NamedTuple):
    """Information about one update."""

    n_clusters: jax.Array  # int32, shape (): clusters of the open bonds
    mean_cluster_size: jax.Array  # float32, shape (): L * L / n_clusters
    # int32, shape (): label propagation iterations until nothing changed
    n_label_steps: jax.Array


def _check_model(model) -> None:
    if not isinstance(model, PottsModel):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} is invalid for the "
            "Swendsen-Wang sampler, which "
            "is implemented for the Potts model only; use the heat-bath "
            "sampler, or Wolff for the Ising model"
        )
    if model.J <= 0:
        raise ValueError(
            f"J={model.J!r} is invalid for the Swendsen-Wang sampler: its bond "
            "probability 1 - exp(-J / T) needs a ferromagnet (J > 0); use the "
            "heat-bath sampler"
        )


def _check_square_lattice(spins: jax.Array) -> int:
    if spins.ndim != 2 or spins.shape[0] != spins.shape[1]:
        raise ValueError(
            f"spins of shape {spins.shape} are invalid: one chain of the "
            "Swendsen-Wang sampler is a square (L, L) array; use jax.vmap over "
            "a leading chain axis"
        )
    return check_lattice_size(spins.shape[0])


def init(position: jax.Array, model: PottsModel) -> SwendsenWangState:
    """Create the chain state of the Potts states ``position`` of shape ``(L, L)``."""
    _check_model(model)
    spins = jnp.asarray(position, dtype=jnp.int8)
    _check_square_lattice(spins)
    return SwendsenWangState(spins, model.energy(spins).astype(jnp.float32))


def _propagate(labels, open_right, open_down):
    """Take the minimum label over each site and its open-bond neighbours,
    then replace every label by the label of the site it names."""
    L = labels.shape[0]
    no_label = jnp.iinfo(jnp.int32).max
    # open_right[i, j] joins (i, j) with (i, j + 1). Rolled by +1 along j, it
    # marks the open bond of each site to its left neighbour.
    candidates = (
        jnp.where(open_right, jnp.roll(labels, -1, axis=1), no_label),
        jnp.where(
            jnp.roll(open_right, 1, axis=1), jnp.roll(labels, 1, axis=1), no_label
        ),
        jnp.where(open_down, jnp.roll(labels, -1, axis=0), no_label),
        jnp.where(
            jnp.roll(open_down, 1, axis=0), jnp.roll(labels, 1, axis=0), no_label
        ),
    )
    for candidate in candidates:
        labels = jnp.minimum(labels, candidate)
    flat = labels.reshape(-1)
    return flat[flat].reshape(L, L)


def cluster_labels(open_right: jax.Array, open_down: jax.Array):
    """Label the connected components of the open bonds of an ``L x L`` torus.

    Args:
        open_right: bool ``(L, L)``; ``[i, j]`` opens the bond
            ``(i, j)-(i, j + 1 mod L)``.
        open_down: bool ``(L, L)``; ``[i, j]`` opens ``(i, j)-(i + 1 mod L, j)``.

    Returns:
        ``(labels, n_steps)``: int32 ``(L, L)`` labels, each the smallest
        flat index ``i * L + j`` of the site's cluster, and the int32 number
        of propagation iterations.
    """
    L = open_right.shape[0]
    labels = jnp.arange(L * L, dtype=jnp.int32).reshape(L, L)

    def changed(carry):
        return carry[1]

    def step(carry):
        labels, _, n_steps = carry
        new_labels = _propagate(labels, open_right, open_down)
        return new_labels, jnp.any(new_labels != labels), n_steps + 1

    labels, _, n_steps = jax.lax.while_loop(
        changed, step, (labels, jnp.bool_(True), jnp.int32(0))
    )
    return labels, n_steps


def build_kernel(model: PottsModel) -> Callable:
    """Build the Swendsen-Wang update for the Potts ``model``.

    Returns:
        ``kernel(rng_key, state, temperature) -> (state, info)``. The
        temperature may be traced and vmapped.

    Raises:
        ValueError: if ``model`` is not a :class:`PottsModel` with ``J > 0``.
    """
    _check_model(model)

    def kernel(
        rng_key: jax.Array, state: SwendsenWangState, temperature
    ) -> tuple[SwendsenWangState, SwendsenWangInfo]:
        L = _check_square_lattice(state.spins)
        temperature = jnp.asarray(temperature, dtype=jnp.float32)
        spins = state.spins

        # Three uniforms per site: for its right and down bonds, and for the
        # new state of the cluster whose label is that site.
        uniforms = jax.random.uniform(rng_key, (3, L, L), dtype=jnp.float32)
        bond_probability = -jnp.expm1(-jnp.float32(model.J) / temperature)
        equal_right = spins == jnp.roll(spins, -1, axis=1)
        equal_down = spins == jnp.roll(spins, -1, axis=0)
        open_right = equal_right & (uniforms[0] < bond_probability)
        open_down = equal_down & (uniforms[1] < bond_probability)
        labels, n_steps = cluster_labels(open_right, open_down)

        # Each cluster reads the new state of its label, so the clusters get
        # independent uniform states. The minimum guards against a uniform
        # that rounds q * u up to q.
        cluster_states = jnp.floor(model.q * uniforms[2].reshape(-1))
        cluster_states = jnp.minimum(cluster_states, model.q - 1).astype(jnp.int8)
        spins = cluster_states[labels]

        energy = model.energy(spins).astype(jnp.float32)
        is_root = labels.reshape(-1) == jnp.arange(L * L, dtype=jnp.int32)
        n_clusters = jnp.sum(is_root, dtype=jnp.int32)
        info = SwendsenWangInfo(
            n_clusters, jnp.float32(L * L) / n_clusters.astype(jnp.float32), n_steps
        )
        return SwendsenWangState(spins, energy), info

    return kernel


def swendsen_wang(model: PottsModel, temperature: float) -> SamplingAlgorithm:
    """Swendsen-Wang sampler for the Potts ``model`` at ``temperature`` (k_B = 1).

    ``step(rng_key, state)`` does one update of one chain; use ``jax.vmap``
    over a leading chain axis for several chains. ``init`` accepts states of
    shape ``(L, L)`` for any ``L >= 2``.

    Raises:
        ValueError: if ``model`` is not a :class:`PottsModel` with ``J > 0``
            or ``temperature`` is not positive and finite.
    """
    check_temperature(temperature)
    kernel = build_kernel(model)

    def init_fn(position: jax.Array, rng_key: jax.Array | None = None):
        del rng_key
        return init(position, model)

    def step_fn(rng_key: jax.Array, state: SwendsenWangState):
        return kernel(rng_key, state, temperature)

    return SamplingAlgorithm(init_fn, step_fn)
