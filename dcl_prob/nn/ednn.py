"""Extensive energy network: a sum over overlapping tiles of one shared network.

An ``L x L`` periodic lattice is cut into ``(L / f)**2`` focus blocks of
``f x f`` sites. Each tile is a focus block with a border of ``c`` sites on
every side (periodic wrap), so a tile has ``P = (f + 2 c)**2`` sites and
neighbouring tiles overlap (see :mod:`dcl_prob.nn.tiles`). One network maps a
tile to a number and ``E(s) = sum_tiles tile_energy(tile) - offset_per_tile *
n_tiles``. Because E is a sum of local terms it applies to any ``L`` divisible
by ``f``, and changing a site changes only the tiles that contain it.

Sites hold Ising spins +-1 (``n_states=2``) or Potts or clock states
``0 .. q-1`` (``n_states=q > 2``). The tile network is the sum of three parts:

* a pairwise term. For spins it is ``x^T A x`` over the tile's spins (``A``
  symmetric, zero diagonal). For ``q`` states it is the same form over the
  one-hot vector ``x`` of length ``P q``, with the ``q x q`` blocks of a site
  with itself set to zero, so any pair Hamiltonian within the tile, such as
  ``-J sum delta(s_i, s_j)``, is represented exactly, and the energy
  extrapolates linearly to configurations far from the training data;
* a field term ``b . x`` (only without symmetry);
* a multilayer perceptron for everything else. With Z2 symmetry (spins) its
  first layer has no bias and the even activation ``log cosh``, so the whole
  energy is invariant under ``s -> -s`` by construction.

With ``colour_symmetric=True`` (``q > 2``) the energy is invariant under every
permutation of the ``q`` colours by construction: the network reads only the
indicators ``delta(s_p, s_p')`` of the ``P (P - 1) / 2`` site pairs of the tile,
which determine a tile up to such a permutation. The pair term is then
``sum_{p < p'} w_pp' delta(s_p, s_p')`` and there is no field term. Without it
no colour symmetry is imposed.

With ``bond_couplings=L`` (spins only) the network describes one disordered
instance on one ``L x L`` lattice, such as an Edwards-Anderson spin glass: a
translation-invariant tile network cannot represent couplings that differ from
bond to bond. It then has a learned coupling ``K_b`` for each of the ``2 N``
nearest-neighbour bonds, in the layout of
:class:`~dcl_prob.spin_glass.EdwardsAndersonModel` (``K[0, i, j]`` couples
``(i, j)`` with ``(i, j + 1)``, ``K[1, i, j]`` couples ``(i, j)`` with
``(i + 1, j)``), and ``E = -sum_b K_b s_i s_j`` plus the shared perceptron (and
field) for corrections. The translation-invariant pair term is dropped. Each
tile carries the bonds from its focus sites to their right and lower
neighbours, so the energy stays a sum of local tile terms. The couplings are
parameters learned from configurations, never inputs: the true bonds are not
known to the fit.

The constant of the energy is fixed so that ``E`` averages to zero over
uniformly random configurations (see :func:`fix_energy_offset`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import check_lattice_size
from dcl_prob.nn.tiles import (
    TileGeometry,
    extract_tiles,
    focus_positions,
    tile_geometry,
)

__all__ = [
    "ExtensiveEnergy",
    "TileGeometry",
    "extract_tiles",
    "fix_energy_offset",
    "tile_geometry",
]

PERCEPTRON_MEAN_SAMPLES = 2**16  # uniform tiles in the estimate of the mean


class ExtensiveEnergy(eqx.Module):
    """Extensive energy network ``E(s)`` on periodic square lattices.

    Args:
        focus: side ``f`` of a focus block.
        context: width ``c`` of the border around it.
        hidden: widths of the hidden layers of the tile perceptron; ``()``
            leaves the perceptron out.
        z2: make ``E(s) = E(-s)`` exactly (spins only); None means True for
            spins and False for ``q > 2`` states.
        key: PRNG key for the initial weights.
        n_states: 2 for Ising spins +-1, or the number ``q > 2`` of Potts or
            clock states ``0 .. q-1``.
        colour_symmetric: make ``E`` invariant under permutations of the
            colours (``q > 2`` only).
        bond_couplings: the lattice size ``L`` of a disordered instance with a
            learned coupling per bond (spins only, ``context >= 1``), or None.
    """

    # (P, P) for spins and with colour symmetry, (P q, P q) over one-hot
    # vectors, None with bond couplings; float32, used symmetrised
    pair_weight: jax.Array | None
    field_weight: jax.Array  # (P,) or (P q,) float32, unused when symmetric
    bonds: jax.Array | None  # (2, L, L) float32 learned couplings, or None
    layers: list  # [(weight (in, out), bias (out,)), ...] float32
    offset: jax.Array  # () float32, subtracted from every tile energy
    focus: int = eqx.field(static=True)
    context: int = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)
    z2: bool = eqx.field(static=True)
    n_states: int = eqx.field(static=True, default=2)
    colour_symmetric: bool = eqx.field(static=True, default=False)

    def __init__(
        self,
        focus: int = 2,
        context: int = 1,
        hidden: tuple[int, ...] = (32, 64),
        z2: bool | None = None,
        *,
        key: jax.Array,
        n_states: int = 2,
        colour_symmetric: bool = False,
        bond_couplings: int | None = None,
    ):
        if focus < 1 or context < 0:
            raise ValueError(
                f"focus={focus} and context={context} are invalid: need focus >= 1 "
                "and context >= 0"
            )
        _check_symmetry(n_states, z2, colour_symmetric, bond_couplings, context)
        self.focus = int(focus)
        self.context = int(context)
        self.hidden = tuple(int(h) for h in hidden)
        self.n_states = int(n_states)
        self.z2 = bool(self.n_states == 2 if z2 is None else z2)
        self.colour_symmetric = bool(colour_symmetric)
        P = self.tile_size
        width = P if self.n_states == 2 else P * self.n_states
        if self.colour_symmetric:
            n_inputs = P * (P - 1) // 2
            self.pair_weight = jnp.zeros((P, P))
        else:
            n_inputs = width
            self.pair_weight = jnp.zeros((width, width))
        self.field_weight = jnp.zeros((width,))
        self.bonds = None
        if bond_couplings is not None:
            L = check_lattice_size(bond_couplings, multiple_of=self.focus)
            self.pair_weight = None
            self.bonds = jnp.zeros((2, L, L))
        widths = (n_inputs,) + self.hidden + (1,)
        keys = jax.random.split(key, len(widths))
        layers = []
        for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            scale = 1.0 / math.sqrt(n_in)
            if k == len(widths) - 2:
                scale *= 0.1  # start close to the pairwise model
            weight = scale * jax.random.normal(keys[k], (n_in, n_out))
            layers.append((weight, jnp.zeros((n_out,))))
        self.layers = layers if self.hidden else []
        self.offset = jnp.zeros(())

    @property
    def tile_size(self) -> int:
        """Number of sites ``P`` in a tile."""
        return (self.focus + 2 * self.context) ** 2

    @property
    def state_values(self) -> np.ndarray:
        """Allowed site values, int8: ``[-1, 1]`` for spins, else ``0 .. q-1``."""
        if self.n_states == 2:
            return np.array([-1, 1], np.int8)
        return np.arange(self.n_states, dtype=np.int8)

    def _pair_matrix(self) -> jax.Array:
        """Symmetrised pair matrix with the blocks of a site with itself zeroed."""
        pair = 0.5 * (self.pair_weight + self.pair_weight.T)
        if self.n_states == 2:
            return pair * (1.0 - jnp.eye(self.tile_size))
        same_site = np.kron(np.eye(self.tile_size), np.ones((self.n_states,) * 2))
        return pair * jnp.asarray(1.0 - same_site, jnp.float32)

    def _colour_pair_weights(self) -> jax.Array:
        """Weights ``(P (P - 1) / 2,)`` of ``delta(s_p, s_p')`` for ``p < p'``."""
        upper = np.triu_indices(self.tile_size, 1)
        return (self.pair_weight + self.pair_weight.T)[upper]

    def _features(self, x: jax.Array) -> jax.Array:
        """Perceptron inputs of tiles ``(..., P)``: spins, one-hot or delta."""
        if self.n_states == 2:
            return x
        if self.colour_symmetric:
            first, second = np.triu_indices(self.tile_size, 1)
            return (x[..., first] == x[..., second]).astype(jnp.float32)
        one_hot = jax.nn.one_hot(x.astype(jnp.int32), self.n_states)
        return one_hot.reshape(x.shape[:-1] + (-1,))

    def _pair_and_field(self, features: jax.Array) -> jax.Array:
        """Pair and field terms of tiles, from their perceptron inputs."""
        if self.bonds is not None:
            energy = jnp.zeros(features.shape[:-1])
        elif self.colour_symmetric:
            return features @ self._colour_pair_weights()
        else:
            pair = self._pair_matrix()
            energy = jnp.einsum("...p,pq,...q->...", features, pair, features)
        if not self.z2:
            energy = energy + features @ self.field_weight
        return energy

    def _perceptron(self, features: jax.Array) -> jax.Array:
        weight, bias = self.layers[0]
        if self.z2:
            z = features @ weight
            h = jnp.logaddexp(z, -z) - math.log(2.0)  # log cosh, even in z
        else:
            h = jnp.tanh(features @ weight + bias)
        for weight, bias in self.layers[1:-1]:
            h = jnp.tanh(h @ weight + bias)
        weight, bias = self.layers[-1]
        return (h @ weight + bias)[..., 0]

    def _bond_energy(self, x: jax.Array, tile_index) -> jax.Array:
        """``-sum K_b s_i s_j`` over the bonds of the focus sites of each tile."""
        L = self.bonds.shape[-1]
        positions = focus_positions(self.focus, self.context)
        width = self.focus + 2 * self.context
        focus_sites = tile_geometry(L, self.focus, self.context).tile_sites[
            :, positions
        ]  # (n_tiles, f * f)
        couplings = self.bonds.reshape(2, -1)[:, focus_sites][:, tile_index]
        centre = x[..., positions]
        right = x[..., positions + 1]
        down = x[..., positions + width]
        bond_terms = couplings[0] * centre * right + couplings[1] * centre * down
        return -jnp.sum(bond_terms, axis=-1)

    def tile_energy(self, x: jax.Array, tile_index=None) -> jax.Array:
        """Energy of tiles, float32 of shape ``(...)``.

        Args:
            x: float32 tile values ``(..., P)``: spins +-1, or states
                ``0 .. q-1``.
            tile_index: integer index of each tile in the lattice,
                broadcastable to ``x.shape[:-1]``. Only an energy with bond
                couplings needs it; the others ignore it.
        """
        features = self._features(x)
        energy = self._pair_and_field(features)
        if self.layers:
            energy = energy + self._perceptron(features)
        if self.bonds is not None:
            if tile_index is None:
                raise ValueError(
                    "this energy has a learned coupling per bond, so tile_energy "
                    "needs the tile_index of every tile"
                )
            energy = energy + self._bond_energy(x, tile_index)
        return energy - jax.lax.stop_gradient(self.offset)

    def geometry(self, L: int) -> TileGeometry:
        """Index tables for lattice size ``L``.

        Args:
            L: linear lattice size, a multiple of ``focus``.

        Returns:
            The :class:`~dcl_prob.nn.tiles.TileGeometry` of ``L``.

        Raises:
            ValueError: if ``L`` is not a multiple of the focus size, or
                differs from the lattice size of learned bond couplings.
        """
        if self.bonds is not None and L != self.bonds.shape[-1]:
            raise ValueError(
                f"L={L} is invalid: this energy has learned bond couplings for "
                f"L={self.bonds.shape[-1]} and applies only to that lattice"
            )
        return tile_geometry(L, self.focus, self.context)

    def tile_energies(self, s: jax.Array) -> jax.Array:
        """Energy of every tile of spins ``(..., L, L)``; shape ``(..., n_tiles)``."""
        geometry = self.geometry(s.shape[-1])
        tile_index = jnp.arange(geometry.n_tiles)
        return self.tile_energy(extract_tiles(s, geometry), tile_index)

    def __call__(self, s: jax.Array) -> jax.Array:
        """Total energy ``E(s)`` of spins ``(..., L, L)``; float32, shape ``(...)``."""
        if s.shape[-1] != s.shape[-2]:
            raise ValueError(
                f"spins of shape {s.shape} are not on a square lattice; "
                "ExtensiveEnergy needs (..., L, L)"
            )
        return jnp.sum(self.tile_energies(s), axis=-1)

    def flip_energy_changes(self, s: jax.Array) -> jax.Array:
        """Energy change ``E(s^i) - E(s)`` of flipping each spin alone.

        Only the tiles that contain a site are evaluated for it.

        Args:
            s: spins +-1 of shape ``(B, L, L)``.

        Returns:
            float32 array ``(B, L, L)``.

        Raises:
            ValueError: for an energy of ``q > 2`` states; use
                :meth:`site_energy_changes`.
        """
        if self.n_states != 2:
            raise ValueError(
                f"flip_energy_changes needs spins, this energy has {self.n_states} "
                "states; use site_energy_changes"
            )
        geometry = self.geometry(s.shape[-1])
        tiles = extract_tiles(s, geometry)  # (B, T, P)
        base = self.tile_energy(tiles, jnp.arange(geometry.n_tiles))  # (B, T)
        tile_index = geometry.site_tiles % geometry.n_tiles  # (N, K)
        site_tiles = tiles[:, tile_index]  # (B, N, K, P)
        flip = 1.0 - 2.0 * jax.nn.one_hot(geometry.site_positions, self.tile_size)
        flipped = self.tile_energy(site_tiles * flip, tile_index)  # (B, N, K)
        old = base[:, tile_index]
        change = (flipped - old) * geometry.site_mask
        return jnp.sum(change, axis=-1).reshape(s.shape).astype(jnp.float32)

    def site_energy_changes(self, s: jax.Array) -> jax.Array:
        """Energy change of setting each site alone to each allowed value.

        Only the tiles that contain a site are evaluated for it.

        Args:
            s: configurations ``(B, L, L)`` of spins +-1 or states ``0 .. q-1``.

        Returns:
            float32 array ``(B, L, L, n_states)``: entry ``a`` of site ``i`` is
            ``E(s with s_i = state_values[a]) - E(s)``, exactly 0 at the
            current value.
        """
        B, L = s.shape[0], s.shape[-1]
        q = self.n_states
        geometry = self.geometry(L)
        tiles = extract_tiles(s, geometry)  # (B, T, P)
        base = self.tile_energy(tiles, jnp.arange(geometry.n_tiles))  # (B, T)
        tile_index = geometry.site_tiles % geometry.n_tiles  # (N, K)
        # Only the q - 1 values other than the current one are evaluated.
        current = self._value_index(s.reshape(B, -1))  # (B, N)
        other = (current[..., None] + jnp.arange(1, q)) % q  # (B, N, q - 1)
        other_values = jnp.asarray(self.state_values, jnp.float32)[other]
        at_site = jax.nn.one_hot(geometry.site_positions, self.tile_size) > 0
        trial = jnp.where(
            at_site[:, :, None, :],
            other_values[:, :, None, :, None],
            tiles[:, tile_index][:, :, :, None, :],
        )  # (B, N, K, q - 1, P)
        trial_energy = self.tile_energy(trial, tile_index[..., None])
        old = base[:, tile_index][..., None]  # (B, N, K, 1)
        change = (trial_energy - old) * geometry.site_mask[..., None]
        change = jnp.sum(change, axis=2)  # (B, N, q - 1)
        by_value = jnp.sum(jax.nn.one_hot(other, q) * change[..., None], axis=-2)
        return by_value.reshape(B, L, L, q).astype(jnp.float32)

    def _value_index(self, s: jax.Array) -> jax.Array:
        """Index into :attr:`state_values` of each site value, int32."""
        if self.n_states == 2:
            return (s.astype(jnp.int32) + 1) // 2
        return s.astype(jnp.int32)

    def exact_tile_mean(self, batch: int = 4096) -> jax.Array:
        """Mean tile energy over all ``2**P`` spin configurations of a tile
        (``P <= 20``, spins only).

        Subtracting it fixes the arbitrary constant of the learned energy so
        that ``E`` averages to zero over uniformly random configurations, as a
        Hamiltonian without a constant term does. Learned bond couplings add
        nothing to it: every product ``s_i s_j`` averages to zero.

        Args:
            batch: tile configurations per evaluation, which bounds memory.

        Returns:
            float32 scalar, the mean energy of one tile (energy units).
        """
        P = self.tile_size
        if self.n_states != 2:
            raise ValueError(
                f"exact_tile_mean needs spins, this energy has {self.n_states} "
                "states; use tile_mean"
            )
        if P > 20:
            raise ValueError(f"exact tile mean needs P <= 20 tile sites, got {P}")
        index = jnp.arange(2**P, dtype=jnp.int32)
        total = jnp.zeros((), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
        n_chunks = max(1, 2**P // batch)
        chunks = index.reshape(n_chunks, -1)

        def chunk_sum(total, rows):
            bits = (rows[:, None] >> jnp.arange(P)) & 1
            x = 1.0 - 2.0 * bits.astype(jnp.float32)
            return total + jnp.sum(self.tile_energy(x, 0) + self.offset), None

        total, _ = jax.lax.scan(chunk_sum, total, chunks)
        return total / 2**P

    def tile_mean(self) -> jax.Array:
        """Mean tile energy (before the offset) over uniformly random tiles.

        For spins it is :meth:`exact_tile_mean`. For ``q > 2`` states the
        ``q**P`` tiles are too many to enumerate, so only the pair and field
        terms enter with their exact means: ``1 / q**2`` for each one-hot
        product of two sites, ``1 / q`` for each delta and each one-hot entry.
        The perceptron enters with an estimate, its mean over ``2**16``
        uniformly random tiles drawn from ``jax.random.key(0)``.
        """
        if self.n_states == 2:
            return self.exact_tile_mean()
        if self.colour_symmetric:
            mean = jnp.sum(self._colour_pair_weights()) / self.n_states
        else:
            mean = jnp.sum(self._pair_matrix()) / self.n_states**2
            mean = mean + jnp.sum(self.field_weight) / self.n_states
        if self.layers:
            shape = (PERCEPTRON_MEAN_SAMPLES, self.tile_size)
            x = jax.random.randint(jax.random.key(0), shape, 0, self.n_states)
            features = self._features(x.astype(jnp.float32))
            mean = mean + jnp.mean(self._perceptron(features))
        return mean


def _check_symmetry(n_states, z2, colour_symmetric, bond_couplings, context) -> None:
    """Reject combinations of states, symmetries and bond couplings that do not fit."""
    if isinstance(n_states, bool) or not isinstance(n_states, int | np.integer):
        raise ValueError(f"n_states={n_states!r} is invalid: pass an integer >= 2")
    if n_states < 2:
        raise ValueError(f"n_states={n_states} is invalid: pass an integer >= 2")
    if n_states > 2 and z2:
        raise ValueError(
            f"z2=True is invalid for {n_states} states: it needs spins +-1; pass "
            "colour_symmetric=True for invariance under colour permutations"
        )
    if n_states == 2 and colour_symmetric:
        raise ValueError(
            "colour_symmetric=True is invalid for spins +-1 (n_states=2); use "
            "z2=True for the global spin flip"
        )
    if bond_couplings is not None and (n_states != 2 or context < 1):
        raise ValueError(
            f"bond_couplings={bond_couplings} is invalid with n_states={n_states} "
            f"and context={context}: learned bond couplings need spins +-1 and "
            "context >= 1, so that each bond lies inside a tile"
        )


def fix_energy_offset(energy: ExtensiveEnergy) -> ExtensiveEnergy:
    """Return ``energy`` with its constant set so that it averages to zero over
    uniformly random configurations (exactly for spins; for ``q > 2`` states
    up to the estimated perceptron mean of :meth:`ExtensiveEnergy.tile_mean`)."""
    mean = eqx.filter_jit(lambda e: e.tile_mean())(energy)
    return eqx.tree_at(lambda e: e.offset, energy, mean.astype(jnp.float32))
