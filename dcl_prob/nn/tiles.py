"""Tiles of a periodic square lattice: the index tables behind the energy network.

An ``L x L`` periodic lattice is cut into ``(L / f)**2`` focus blocks of
``f x f`` sites. Each tile is a focus block with a border of ``c`` sites on
every side (periodic wrap), so a tile has ``P = (f + 2 c)**2`` sites and
neighbouring tiles overlap. Sites inside a tile are numbered row by row,
``position = row * (f + 2 c) + column``.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import check_lattice_size

__all__ = [
    "TileGeometry",
    "extract_tiles",
    "focus_positions",
    "neighbour_positions",
    "tile_geometry",
]


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

    NOTE: for ``L < f + 2c`` a tile contains some sites twice. Total energies
    are still right, but the single-site energy changes of
    :class:`~dcl_prob.nn.ednn.ExtensiveEnergy` and the tile-local sampler
    change only one copy, so they are wrong at such sizes.
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
        """Number of tiles, ``(L / focus)**2``, one per focus block."""
        return (self.L // self.focus) ** 2

    @property
    def tile_width(self) -> int:
        """Side of a tile in sites, ``focus + 2 * context``."""
        return self.focus + 2 * self.context


@functools.lru_cache(maxsize=64)
def tile_geometry(L: int, focus: int, context: int) -> TileGeometry:
    """Build the index tables of :class:`TileGeometry` for one lattice size.

    Args:
        L: linear lattice size, a multiple of ``focus``.
        focus: focus block side ``f``.
        context: context border ``c``; a tile is ``f + 2 c`` sites wide.

    Returns:
        The :class:`TileGeometry` of ``(L / f)**2`` tiles.

    Raises:
        ValueError: if ``L`` is not an integer >= 2 that is a multiple of
            ``focus``.
    """
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


def focus_positions(focus: int, context: int) -> np.ndarray:
    """Positions ``(f * f,)`` of the focus sites inside a tile, row by row."""
    width = focus + 2 * context
    inner = np.arange(context, context + focus)
    return (inner[:, None] * width + inner[None, :]).ravel()


@functools.lru_cache(maxsize=64)
def neighbour_positions(
    L: int, focus: int, context: int, offset: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Locate the bond partners of every site inside the tiles of the neighbour.

    For the bond from site ``i`` to its neighbour ``j = i + offset`` (periodic),
    the tiles that contain ``j`` are ``tile_sites[site_tiles[j]]`` of
    :func:`tile_geometry`.

    Returns:
        ``(neighbour, positions)``: the flat index ``j`` of each site's
        neighbour, int32 ``(N,)``, and the position of site ``i`` inside each
        tile that contains ``j``, int32 ``(N, K)``, or -1 where that tile does
        not contain ``i``.
    """
    geometry = tile_geometry(L, focus, context)
    i, j = np.divmod(np.arange(L * L), L)
    neighbour = ((i + offset[0]) % L) * L + (j + offset[1]) % L
    tiles = geometry.tile_sites[geometry.site_tiles[neighbour] % geometry.n_tiles]
    found = tiles == np.arange(L * L)[:, None, None]  # (N, K, P)
    positions = np.where(found.any(axis=-1), found.argmax(axis=-1), -1)
    return neighbour.astype(np.int32), positions.astype(np.int32)
