"""Extensive energy network: a sum over overlapping tiles of one shared network.

An ``L x L`` periodic lattice is cut into ``(L / f)**2`` focus blocks of
``f x f`` sites. Each tile is a focus block with a border of ``c`` sites on
every side (periodic wrap), so a tile has ``P = (f + 2 c)**2`` sites and
neighbouring tiles overlap. One network maps a tile to a number and
``E(s) = sum_tiles tile_energy(tile) - offset_per_tile * n_tiles``. Because E is a
sum of local terms it applies to any ``L`` divisible by ``f``, and flipping a
site changes only the tiles that contain it.

The tile network is the sum of three parts:

* a pairwise term ``x^T A x`` over the tile's spins (``A`` symmetric, zero
  diagonal), which represents any pair Hamiltonian within the tile exactly
  and extrapolates linearly to configurations far from the training data;
* a field term ``b . x`` (only without Z2 symmetry);
* a multilayer perceptron for everything else. With Z2 symmetry its first layer
  has no bias and the even activation ``log cosh``, so the whole energy is
  invariant under ``s -> -s`` by construction.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import check_lattice_size

__all__ = ["ExtensiveEnergy", "TileGeometry", "tile_geometry"]


class TileGeometry(NamedTuple):
    """Static index tables that cut an ``L x L`` lattice into tiles.

    Attributes:
        L: linear lattice size.
        focus: side ``f`` of a focus block.
        context: border width ``c``.
        rows: ``(n_blocks, f + 2c)`` lattice rows (and columns) of each tile
            row (column), with ``n_blocks = L / f``.
        tile_sites: ``(n_tiles, P)`` flat lattice index of every tile site.
        site_tiles: ``(N, K)`` flat index of the tiles that contain each site;
            padding entries are ``n_tiles`` (out of range).
        site_positions: ``(N, K)`` position of the site inside each of those
            tiles, in ``[0, P)``.
        site_mask: ``(N, K)`` 1.0 for a real entry, 0.0 for padding.
    """

    L: int
    focus: int
    context: int
    rows: np.ndarray
    tile_sites: np.ndarray
    site_tiles: np.ndarray
    site_positions: np.ndarray
    site_mask: np.ndarray

    @property
    def n_tiles(self) -> int:
        return (self.L // self.focus) ** 2

    @property
    def tile_width(self) -> int:
        return self.focus + 2 * self.context


@functools.lru_cache(maxsize=64)
def tile_geometry(L: int, focus: int, context: int) -> TileGeometry:
    """Build the index tables of :class:`TileGeometry` for one lattice size."""
    L = check_lattice_size(L, multiple_of=focus)
    width = focus + 2 * context
    n_blocks = L // focus
    rows = (np.arange(n_blocks)[:, None] * focus - context + np.arange(width)) % L

    # For each coordinate x, the blocks whose window covers x and the offset.
    covers = [[] for _ in range(L)]
    for block in range(n_blocks):
        for offset, x in enumerate(rows[block]):
            covers[x].append((block, offset))
    max_cover = max(len(c) for c in covers)
    K = max_cover**2
    n_sites = L * L
    n_tiles = n_blocks**2
    tile_sites = (rows[:, None, :, None] * L + rows[None, :, None, :]).reshape(
        n_tiles, width**2
    )
    site_tiles = np.full((n_sites, K), n_tiles, np.int32)
    site_positions = np.zeros((n_sites, K), np.int32)
    site_mask = np.zeros((n_sites, K), np.float32)
    for i, j in itertools.product(range(L), range(L)):
        pairs = itertools.product(covers[i], covers[j])
        for k, ((block_i, off_i), (block_j, off_j)) in enumerate(pairs):
            site = i * L + j
            site_tiles[site, k] = block_i * n_blocks + block_j
            site_positions[site, k] = off_i * width + off_j
            site_mask[site, k] = 1.0
    return TileGeometry(
        L=L,
        focus=focus,
        context=context,
        rows=rows,
        tile_sites=tile_sites,
        site_tiles=site_tiles,
        site_positions=site_positions,
        site_mask=site_mask,
    )


def extract_tiles(s: jax.Array, geometry: TileGeometry) -> jax.Array:
    """Cut spins ``(..., L, L)`` into float32 tiles ``(..., n_tiles, P)``."""
    rows = geometry.rows
    tiles = s[..., rows[:, None, :, None], rows[None, :, None, :]]
    shape = s.shape[:-2] + (geometry.n_tiles, geometry.tile_width**2)
    return tiles.reshape(shape).astype(jnp.float32)


class ExtensiveEnergy(eqx.Module):
    """Extensive energy network ``E(s)`` for Ising spins on periodic square lattices.

    Args:
        focus: side ``f`` of a focus block.
        context: width ``c`` of the border around it.
        hidden: widths of the hidden layers of the tile perceptron.
        z2: make ``E(s) = E(-s)`` exactly.
        key: PRNG key for the initial weights.
    """

    pair_weight: jax.Array  # (P, P) float32, used symmetrised with zero diagonal
    field_weight: jax.Array  # (P,) float32, unused when z2
    layers: list  # [(weight (in, out), bias (out,)), ...] float32
    offset: jax.Array  # () float32, subtracted from every tile energy
    focus: int = eqx.field(static=True)
    context: int = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)
    z2: bool = eqx.field(static=True)

    def __init__(
        self,
        focus: int = 2,
        context: int = 1,
        hidden: tuple[int, ...] = (32, 64),
        z2: bool = True,
        *,
        key: jax.Array,
    ):
        if focus < 1 or context < 0:
            raise ValueError(
                f"focus={focus} and context={context} are invalid: need focus >= 1 "
                "and context >= 0"
            )
        self.focus = int(focus)
        self.context = int(context)
        self.hidden = tuple(int(h) for h in hidden)
        self.z2 = bool(z2)
        n_inputs = (self.focus + 2 * self.context) ** 2
        widths = (n_inputs,) + self.hidden + (1,)
        keys = jax.random.split(key, len(widths))
        self.pair_weight = jnp.zeros((n_inputs, n_inputs))
        self.field_weight = jnp.zeros((n_inputs,))
        layers = []
        for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            scale = 1.0 / math.sqrt(n_in)
            if k == len(widths) - 2:
                scale *= 0.1  # start close to the pairwise model
            weight = scale * jax.random.normal(keys[k], (n_in, n_out))
            layers.append((weight, jnp.zeros((n_out,))))
        self.layers = layers
        self.offset = jnp.zeros(())

    @property
    def tile_size(self) -> int:
        """Number of sites ``P`` in a tile."""
        return (self.focus + 2 * self.context) ** 2

    def tile_energy(self, x: jax.Array) -> jax.Array:
        """Energy of tiles ``x`` (float32 +-1, shape ``(..., P)``); shape ``(...)``."""
        pair = 0.5 * (self.pair_weight + self.pair_weight.T)
        pair = pair * (1.0 - jnp.eye(self.tile_size))
        energy = jnp.einsum("...p,pq,...q->...", x, pair, x)
        if not self.z2:
            energy = energy + x @ self.field_weight

        weight, bias = self.layers[0]
        if self.z2:
            z = x @ weight
            h = jnp.logaddexp(z, -z) - math.log(2.0)  # log cosh, even in z
        else:
            h = jnp.tanh(x @ weight + bias)
        for weight, bias in self.layers[1:-1]:
            h = jnp.tanh(h @ weight + bias)
        weight, bias = self.layers[-1]
        energy = energy + (h @ weight + bias)[..., 0]
        return energy - jax.lax.stop_gradient(self.offset)

    def geometry(self, L: int) -> TileGeometry:
        """Index tables for lattice size ``L``; raises if ``L`` is not a multiple of
        the focus size."""
        return tile_geometry(L, self.focus, self.context)

    def tile_energies(self, s: jax.Array) -> jax.Array:
        """Energy of every tile of spins ``(..., L, L)``; shape ``(..., n_tiles)``."""
        geometry = self.geometry(s.shape[-1])
        return self.tile_energy(extract_tiles(s, geometry))

    def __call__(self, s: jax.Array) -> jax.Array:
        """Total energy ``E(s)`` of spins ``(..., L, L)``; float32, shape ``(...)``."""
        if s.shape[-1] != s.shape[-2]:
            raise ValueError(
                f"spins of shape {s.shape} are not on a square lattice; "
                "ExtensiveEnergy needs (..., L, L)"
            )
        return jnp.sum(self.tile_energies(s), axis=-1)

    def flip_energy_changes(self, s: jax.Array) -> jax.Array:
        """Energy change ``E(s^i) - E(s)`` of flipping each site alone.

        Only the tiles that contain a site are evaluated for it.

        Args:
            s: spins of shape ``(B, L, L)``.

        Returns:
            float32 array ``(B, L, L)``.
        """
        geometry = self.geometry(s.shape[-1])
        tiles = extract_tiles(s, geometry)  # (B, T, P)
        base = self.tile_energy(tiles)  # (B, T)
        site_tiles = tiles[:, geometry.site_tiles % geometry.n_tiles]  # (B, N, K, P)
        flip = 1.0 - 2.0 * jax.nn.one_hot(geometry.site_positions, self.tile_size)
        flipped = self.tile_energy(site_tiles * flip)  # (B, N, K)
        old = base[:, geometry.site_tiles % geometry.n_tiles]
        change = (flipped - old) * geometry.site_mask
        return jnp.sum(change, axis=-1).reshape(s.shape).astype(jnp.float32)

    def exact_tile_mean(self, batch: int = 4096) -> jax.Array:
        """Mean tile energy over all ``2**P`` tile configurations (``P <= 20``).

        Subtracting it fixes the arbitrary constant of the learned energy so
        that ``E`` averages to zero over uniformly random configurations, as a
        Hamiltonian without a constant term does.
        """
        P = self.tile_size
        if P > 20:
            raise ValueError(f"exact tile mean needs P <= 20 tile sites, got {P}")
        index = jnp.arange(2**P, dtype=jnp.int32)
        total = jnp.zeros((), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        n_chunks = max(1, 2**P // batch)
        chunks = index.reshape(n_chunks, -1)

        def chunk_sum(total, rows):
            bits = (rows[:, None] >> jnp.arange(P)) & 1
            x = 1.0 - 2.0 * bits.astype(jnp.float32)
            return total + jnp.sum(self.tile_energy(x) + self.offset), None

        total, _ = jax.lax.scan(chunk_sum, total, chunks)
        return total / 2**P


def fix_energy_offset(energy: ExtensiveEnergy) -> ExtensiveEnergy:
    """Return ``energy`` with its constant set so that it averages to zero over
    uniformly random configurations."""
    mean = eqx.filter_jit(lambda e: e.exact_tile_mean())(energy)
    return eqx.tree_at(lambda e: e.offset, energy, mean.astype(jnp.float32))
