"""Periodic square lattices: neighbour shifts, sublattices and input checks.

Spins live in arrays of shape ``(..., L, L)`` with the lattice axes last, so any
number of leading batch or chain axes is allowed. Boundaries are periodic
(a torus) throughout the package.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DIAGONAL_OFFSETS",
    "NEAREST_OFFSETS",
    "check_lattice_size",
    "checkerboard_mask",
    "neighbour_sum",
    "offset_sum",
    "real_dtype",
    "shift",
    "site_order",
]

# Bond directions (di, dj), one per pair of opposite directions: a site
# interacts with the sites at +(di, dj) and -(di, dj).
NEAREST_OFFSETS = ((0, 1), (1, 0))
DIAGONAL_OFFSETS = ((1, 1), (1, -1))


def real_dtype():
    """Float dtype of model energies: float32, or float64 inside
    ``jax.enable_x64(True)``."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def shift(
    x: jnp.ndarray,
    offset: tuple[int, int],
    sign: int = 1,
    axes: tuple[int, int] = (-2, -1),
) -> jnp.ndarray:
    """Return ``y`` with ``y[i, j] = x[i + sign * di, j + sign * dj]``, periodic.

    ``offset`` is ``(di, dj)`` and ``axes`` are the two lattice axes of ``x``.
    """
    di, dj = offset
    return jnp.roll(x, (-sign * di, -sign * dj), axis=axes)


def offset_sum(x: jnp.ndarray, offsets, axes: tuple[int, int] = (-2, -1)):
    """Sum of ``x`` over the sites at ``+offset`` and ``-offset`` of every site.

    With :data:`NEAREST_OFFSETS` this is :func:`neighbour_sum`.

    Args:
        x: array whose lattice axes are ``axes``, for example ``(..., L, L)``.
        offsets: ``(di, dj)`` pairs, each summed in both directions.
        axes: the two lattice axes of ``x``.

    Returns:
        An array of the shape and dtype of ``x`` (periodic boundaries).
    """
    return sum(
        shift(x, offset, 1, axes) + shift(x, offset, -1, axes) for offset in offsets
    )


def check_lattice_size(L: int, *, name: str = "L", multiple_of: int = 1) -> int:
    """Validate a linear lattice size and return it as an ``int``.

    Args:
        L: the lattice size to check.
        name: the name of the value in error messages.
        multiple_of: ``L`` must be a multiple of it, such as the focus size
            of an energy network.

    Raises:
        ValueError: if ``L`` is not an integer of at least 2, or is not a
            multiple of ``multiple_of``.
    """
    if isinstance(L, bool) or int(L) != L:
        raise ValueError(
            f"{name}={L!r} is invalid: the lattice size must be an integer"
        )
    L = int(L)
    if L < 2:
        raise ValueError(f"{name}={L} is invalid: the lattice size must be at least 2")
    if L % multiple_of:
        raise ValueError(
            f"{name}={L} is invalid: it must be a multiple of {multiple_of} "
            f"(the focus size of the energy network); use L = "
            f"{max(multiple_of, L - L % multiple_of)} or "
            f"{L + multiple_of - L % multiple_of}"
        )
    return L


def neighbour_sum(s: jnp.ndarray) -> jnp.ndarray:
    """Sum of the four nearest-neighbour spins of every site, periodic wrap.

    Args:
        s: spins, shape ``(..., L, L)``.

    Returns:
        Array of the same shape as ``s``.
    """
    return (
        jnp.roll(s, 1, axis=-1)
        + jnp.roll(s, -1, axis=-1)
        + jnp.roll(s, 1, axis=-2)
        + jnp.roll(s, -1, axis=-2)
    )


def checkerboard_mask(L: int, parity: int) -> np.ndarray:
    """Boolean ``(L, L)`` mask of the sites with ``(i + j) % 2 == parity``.

    For odd ``L`` the two sublattices touch across the periodic boundary, so a
    checkerboard update is exact only for even ``L``.
    """
    i, j = np.indices((L, L))
    return (i + j) % 2 == parity


def site_order(L: int) -> np.ndarray:
    """Return the raster (row-major) order of the ``L * L`` sites as flat indices.

    The autoregressive model visits sites in this order: site ``k`` is
    ``(k // L, k % L)``.

    Args:
        L: linear lattice size.

    Returns:
        int array ``(L * L,)``.
    """
    return np.arange(L * L)
