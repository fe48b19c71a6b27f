"""Edwards-Anderson spin glass on the periodic square lattice.

``H(s) = -sum_<ij> J_ij s_i s_j`` with spins ``+-1`` and one quenched
coupling per nearest-neighbour bond of the ``L x L`` torus. The couplings
are one float32 array ``bonds`` of shape ``(2, L, L)``: ``bonds[0, i, j]``
couples ``(i, j)`` with ``(i, j + 1 mod L)`` (the "right" bond) and
``bonds[1, i, j]`` couples ``(i, j)`` with ``(i + 1 mod L, j)`` (the "down"
bond). :class:`EdwardsAndersonModel` has the interface of the other models
in :mod:`dcl_prob.hamiltonians`, which re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import NEAREST_OFFSETS, check_lattice_size, real_dtype, shift

__all__ = ["BOND_DISTRIBUTIONS", "EdwardsAndersonModel", "overlap"]

BOND_DISTRIBUTIONS = ("gaussian", "pm")


def overlap(s1: jnp.ndarray, s2: jnp.ndarray) -> jnp.ndarray:
    """Edwards-Anderson overlap ``q = sum_i s1_i s2_i / N`` of two replicas.

    Args:
        s1, s2: -1/+1 spins of shapes ``(..., L, L)`` that broadcast.

    Returns:
        float32 array of the broadcast shape ``(...)``. Its square averaged
        over independent replicas of one instance is the spin-glass order
        parameter ``q^2``.
    """
    product = s1.astype(jnp.float32) * s2.astype(jnp.float32)
    return jnp.mean(product, axis=(-2, -1))


@dataclass(frozen=True, eq=False)
class EdwardsAndersonModel:
    """Edwards-Anderson spin glass with the couplings ``bonds``.

    Two models are equal, and hash equally, when their bonds are equal. That
    makes an instance usable as a static argument of ``jax.jit``: the bonds
    then become constants of the compiled program, and each instance
    compiles its own program. The order parameter is ``|m|``, which only
    monitors the chains. The physical order parameter needs two replicas:
    see :func:`overlap`.

    Attributes:
        bonds: float32 array ``(2, L, L)`` of the couplings (energy units,
            k_B = 1), read-only; see the module docstring for the layout.
        distribution: how the bonds were drawn (``"gaussian"`` or ``"pm"``),
            or None; stored in data files, ignored by equality.
        seed: the NumPy seed of the draw, or None; stored like
            ``distribution``.
    """

    bonds: np.ndarray
    distribution: str | None = None
    seed: int | None = None
    _hash: int = field(init=False, repr=False)

    name = "spin-glass"
    encoding = "pm1"
    interaction_offsets = NEAREST_OFFSETS

    def __post_init__(self):
        bonds = np.array(self.bonds, dtype=np.float32)
        if bonds.ndim != 3 or bonds.shape[0] != 2 or bonds.shape[1] != bonds.shape[2]:
            raise ValueError(
                f"bonds of shape {bonds.shape} are invalid: pass a (2, L, L) array "
                "with the right bonds in bonds[0] and the down bonds in bonds[1]"
            )
        check_lattice_size(bonds.shape[1], name="L of the bonds")
        if not np.all(np.isfinite(bonds)):
            raise ValueError("bonds contain NaN or infinite values; pass finite bonds")
        if self.distribution is not None and self.distribution not in (
            BOND_DISTRIBUTIONS
        ):
            raise ValueError(
                f"distribution={self.distribution!r} is invalid: use one of "
                f"{BOND_DISTRIBUTIONS} or None"
            )
        bonds.setflags(write=False)
        object.__setattr__(self, "bonds", bonds)
        object.__setattr__(self, "_hash", hash((bonds.shape, bonds.tobytes())))

    def __eq__(self, other) -> bool:
        if not isinstance(other, EdwardsAndersonModel):
            return NotImplemented
        return self._hash == other._hash and np.array_equal(self.bonds, other.bonds)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            f"EdwardsAndersonModel(L={self.L}, distribution={self.distribution!r}, "
            f"seed={self.seed!r})"
        )

    @classmethod
    def random(
        cls, L: int, *, distribution: str = "gaussian", seed: int
    ) -> EdwardsAndersonModel:
        """Draw the bonds of an ``L x L`` instance with NumPy from ``seed``.

        ``"gaussian"`` draws ``N(0, 1)`` bonds with
        ``numpy.random.default_rng(seed).standard_normal((2, L, L))``, rounded
        to float32; ``"pm"`` draws ``+-1`` with probability 1/2 each. The same
        seed gives the same bonds on every platform for a given NumPy bit
        generator (PCG64).

        Raises:
            ValueError: for an invalid ``L``, distribution or seed.
        """
        L = check_lattice_size(L)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed={seed!r} is invalid: pass an integer seed")
        rng = np.random.default_rng(int(seed))
        if distribution == "gaussian":
            bonds = rng.standard_normal((2, L, L))
        elif distribution == "pm":
            bonds = 2.0 * rng.integers(0, 2, size=(2, L, L)) - 1.0
        else:
            raise ValueError(
                f"distribution={distribution!r} is invalid: use one of "
                f"{BOND_DISTRIBUTIONS}"
            )
        return cls(bonds, distribution=distribution, seed=int(seed))

    @property
    def L(self) -> int:
        """Linear size of the lattice of the bonds."""
        return self.bonds.shape[-1]

    @property
    def n_states(self) -> int:
        """Number of values of a site: 2."""
        return 2

    @property
    def state_values(self) -> np.ndarray:
        """Site values, read-only int8 ``[-1, 1]``."""
        values = np.array([-1, 1], dtype=np.int8)
        values.setflags(write=False)
        return values

    def _check_lattice(self, s: jnp.ndarray) -> None:
        if s.shape[-2:] != (self.L, self.L):
            raise ValueError(
                f"spins of shape {s.shape} are invalid for a spin glass with "
                f"L={self.L}: the last two axes must be ({self.L}, {self.L})"
            )

    def energy(self, s: jnp.ndarray) -> jnp.ndarray:
        """Total energy of spins of shape ``(..., L, L)``; shape ``(...)``."""
        self._check_lattice(s)
        x = s.astype(real_dtype())
        bonds = jnp.asarray(self.bonds, dtype=x.dtype)
        right = bonds[0] * x * shift(x, (0, 1))
        down = bonds[1] * x * shift(x, (1, 0))
        return -jnp.sum(right + down, axis=(-2, -1))

    def local_field(self, s: jnp.ndarray) -> jnp.ndarray:
        """Field ``sum_j J_ij s_j`` acting on every site, shape of ``s``."""
        self._check_lattice(s)
        x = s.astype(real_dtype())
        bonds = jnp.asarray(self.bonds, dtype=x.dtype)
        field = bonds[0] * shift(x, (0, 1)) + bonds[1] * shift(x, (1, 0))
        # The bond to the left neighbour is the right bond of that neighbour,
        # and the bond up is the down bond of the site above.
        field += shift(bonds[0] * x, (0, 1), -1) + shift(bonds[1] * x, (1, 0), -1)
        return field

    def site_energies(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy of each site's bonds at ``s_i = -1, +1``; ``(..., L, L, 2)``."""
        field = self.local_field(s)
        return jnp.stack([field, -field], axis=-1)

    def order_parameter(self, s: jnp.ndarray) -> jnp.ndarray:
        """``|m|`` per spin of spins ``(..., L, L)``; float32, shape ``(...)``."""
        return jnp.abs(jnp.mean(s.astype(jnp.float32), axis=(-2, -1)))

    def to_dict(self) -> dict:
        """Return the model name, ``L`` and the provenance of the bonds.

        The bonds themselves are stored as an array next to the spins; see
        :func:`dcl_prob.data.save_dataset`.
        """
        attrs = {"model": self.name, "L": self.L}
        if self.distribution is not None:
            attrs["bond_distribution"] = self.distribution
        if self.seed is not None:
            attrs["bond_seed"] = self.seed
        return attrs
