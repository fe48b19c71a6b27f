"""Lattice Hamiltonians used to make data and to evaluate learned models.

The energies here are the true ones. They generate data sets and score
predictions; :func:`dcl_prob.fit.fit` never receives them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax.numpy as jnp

from dcl_prob.lattice import neighbour_sum

__all__ = ["IsingModel", "magnetization"]


def magnetization(s: jnp.ndarray) -> jnp.ndarray:
    """Magnetization per spin, ``sum_i s_i / N``, of spins of shape ``(..., L, L)``.

    Returns a float32 array of shape ``(...)``.
    """
    return jnp.mean(s.astype(jnp.float32), axis=(-2, -1))


@dataclass(frozen=True)
class IsingModel:
    """Ising model on the periodic square lattice.

    ``H(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` with spins ``s_i = +-1`` and
    each nearest-neighbour bond counted once (``2 N`` bonds on ``N`` sites).

    Attributes:
        J: nearest-neighbour coupling (energy units, k_B = 1).
        h: uniform external field.
    """

    J: float = 1.0
    h: float = 0.0

    name = "ising"

    def energy(self, s: jnp.ndarray) -> jnp.ndarray:
        """Total energy of spins of shape ``(..., L, L)``; float32, shape ``(...)``."""
        x = s.astype(jnp.float32)
        bonds = x * (jnp.roll(x, -1, axis=-1) + jnp.roll(x, -1, axis=-2))
        return -self.J * jnp.sum(bonds, axis=(-2, -1)) - self.h * jnp.sum(
            x, axis=(-2, -1)
        )

    def local_field(self, s: jnp.ndarray) -> jnp.ndarray:
        """Field ``J * sum_neighbours s_j + h`` acting on every site, shape of ``s``."""
        return self.J * neighbour_sum(s.astype(jnp.float32)) + self.h

    def flip_energy_change(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy change of flipping each site alone, ``2 s_i (J sum_j s_j + h)``."""
        return 2.0 * s.astype(jnp.float32) * self.local_field(s)

    def to_dict(self) -> dict:
        """Return the model name and couplings, as stored in data files."""
        return {"model": self.name, **asdict(self)}
