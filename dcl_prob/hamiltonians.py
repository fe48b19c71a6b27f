"""Lattice Hamiltonians used to make data and to evaluate learned models.

The energies here are the true ones. They generate data sets and score
predictions; :func:`dcl_prob.fit.fit` never receives them.

Every model works on spins of shape ``(..., L, L)`` on the periodic square
lattice, counts each bond once (``2 N`` nearest-neighbour bonds on ``N``
sites, and ``2 N`` more diagonal ones for :class:`IsingNNNModel`) and shares
one interface:

- ``name``: the model name stored in data files; ``encoding``: ``"pm1"`` for
  -1/+1 spins, ``"potts"`` for states ``0 .. q-1``;
- ``n_states`` and ``state_values``: the allowed spin values, an int8 NumPy
  array (``[-1, 1]`` or ``arange(q)``);
- ``interaction_offsets``: the bond directions ``(di, dj)``, one per pair of
  opposite directions; a site interacts with the sites at ``+-(di, dj)``.
  Samplers colour the lattice from them;
- ``energy(s)`` with shape ``(...)``; ``site_energies(s)`` with shape
  ``(..., L, L, n_states)``: the energy of the bonds and the field term of
  site ``i`` if it took each allowed value with its neighbours fixed, so
  that ``E(s with s_i = a) - E(s with s_i = b)`` equals
  ``site_energies(s)[..., i, a] - site_energies(s)[..., i, b]``;
- ``order_parameter(s)`` with shape ``(...)``; ``to_dict()`` for data
  attributes.

Energies come out in float32, or in float64 inside ``jax.enable_x64(True)``,
which the exact enumeration uses. The models are frozen dataclasses, hashable
by value, so they can be static arguments of ``jax.jit``. The spin glass,
:class:`EdwardsAndersonModel`, is defined in :mod:`dcl_prob.spin_glass` and
re-exported here; :func:`model_from_dict` rebuilds any model from its data
attributes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import (
    DIAGONAL_OFFSETS,
    NEAREST_OFFSETS,
    neighbour_sum,
    offset_sum,
    real_dtype,
    shift,
)
from dcl_prob.spin_glass import EdwardsAndersonModel, overlap

__all__ = [
    "MODELS",
    "ClockModel",
    "EdwardsAndersonModel",
    "IsingModel",
    "IsingNNNModel",
    "PottsModel",
    "magnetization",
    "model_from_dict",
    "overlap",
]

PM1_VALUES = np.array([-1, 1], dtype=np.int8)
PM1_VALUES.setflags(write=False)
# States are stored as int8.
MAX_POTTS_STATES = 127


def magnetization(s: jnp.ndarray) -> jnp.ndarray:
    """Magnetization per spin, ``sum_i s_i / N``, of spins of shape ``(..., L, L)``.

    Returns a float32 array of shape ``(...)``.
    """
    return jnp.mean(s.astype(jnp.float32), axis=(-2, -1))


def _two_state_site_energies(field: jnp.ndarray) -> jnp.ndarray:
    """Site energies ``-s_i * field`` at ``s_i = -1, +1``, on a new last axis."""
    return jnp.stack([field, -field], axis=-1)


def _check_finite(**couplings) -> None:
    """Reject couplings that are not finite numbers; traced values pass, so
    that a model can be built inside ``jax.jit`` from traced couplings."""
    for name, value in couplings.items():
        if isinstance(value, jax.core.Tracer):
            continue
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise ValueError(f"{name}={value!r} is invalid: pass a finite number")


@dataclass(frozen=True)
class IsingModel:
    """Ising model on the periodic square lattice.

    ``H(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` with spins ``s_i = +-1`` and
    each nearest-neighbour bond counted once (``2 N`` bonds on ``N`` sites).
    The order parameter is ``|m|``.

    Attributes:
        J: nearest-neighbour coupling (energy units, k_B = 1).
        h: uniform external field.
    """

    J: float = 1.0
    h: float = 0.0

    name = "ising"
    encoding = "pm1"
    interaction_offsets = NEAREST_OFFSETS

    @property
    def n_states(self) -> int:
        """Number of values of a site: 2."""
        return 2

    @property
    def state_values(self) -> np.ndarray:
        """Site values, read-only int8 ``[-1, 1]``."""
        return PM1_VALUES

    def energy(self, s: jnp.ndarray) -> jnp.ndarray:
        """Total energy of spins of shape ``(..., L, L)``; float32, shape ``(...)``."""
        x = s.astype(real_dtype())
        bonds = x * (jnp.roll(x, -1, axis=-1) + jnp.roll(x, -1, axis=-2))
        return -self.J * jnp.sum(bonds, axis=(-2, -1)) - self.h * jnp.sum(
            x, axis=(-2, -1)
        )

    def local_field(self, s: jnp.ndarray) -> jnp.ndarray:
        """Field ``J * sum_neighbours s_j + h`` acting on every site, shape of ``s``."""
        return self.J * neighbour_sum(s.astype(jnp.float32)) + self.h

    def flip_energy_change(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy change of flipping each site alone, ``2 s_i (J sum_j s_j + h)``.

        Args:
            s: spins -1/+1 of shape ``(..., L, L)``.

        Returns:
            float32 total-energy changes of the same shape, one per site.
        """
        return 2.0 * s.astype(jnp.float32) * self.local_field(s)

    def site_energies(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy terms of each site at ``s_i = -1, +1``; shape ``(..., L, L, 2)``."""
        field = self.J * neighbour_sum(s.astype(real_dtype())) + self.h
        return _two_state_site_energies(field)

    def order_parameter(self, s: jnp.ndarray) -> jnp.ndarray:
        """``|m|`` per spin of spins ``(..., L, L)``; float32, shape ``(...)``."""
        return jnp.abs(magnetization(s))

    def to_dict(self) -> dict:
        """Return the model name and couplings, as stored in data files."""
        return {"model": self.name, **asdict(self)}


@dataclass(frozen=True)
class IsingNNNModel:
    """Ising model with nearest- and next-nearest-neighbour couplings.

    ``H(s) = -J sum_nn s_i s_j - J2 sum_nnn s_i s_j - h sum_i s_i`` on the
    periodic square lattice. The next-nearest neighbours are the four
    diagonal ones, and each bond is counted once (``2 N`` nearest and ``2 N``
    diagonal bonds). The order parameter is ``|m|``.

    Attributes:
        J: nearest-neighbour coupling (energy units, k_B = 1).
        J2: diagonal coupling.
        h: uniform external field.
    """

    J: float = 1.0
    J2: float = 0.0
    h: float = 0.0

    name = "ising-nnn"
    encoding = "pm1"
    interaction_offsets = NEAREST_OFFSETS + DIAGONAL_OFFSETS

    def __post_init__(self):
        _check_finite(J=self.J, J2=self.J2, h=self.h)

    @property
    def n_states(self) -> int:
        """Number of values of a site: 2."""
        return 2

    @property
    def state_values(self) -> np.ndarray:
        """Site values, read-only int8 ``[-1, 1]``."""
        return PM1_VALUES

    def energy(self, s: jnp.ndarray) -> jnp.ndarray:
        """Total energy of spins of shape ``(..., L, L)``; shape ``(...)``."""
        x = s.astype(real_dtype())
        nearest = sum(x * shift(x, offset) for offset in NEAREST_OFFSETS)
        diagonal = sum(x * shift(x, offset) for offset in DIAGONAL_OFFSETS)
        terms = -self.J * nearest - self.J2 * diagonal - self.h * x
        return jnp.sum(terms, axis=(-2, -1))

    def local_field(self, s: jnp.ndarray) -> jnp.ndarray:
        """Field ``J sum_nn s_j + J2 sum_nnn s_j + h`` on every site, shape of ``s``."""
        x = s.astype(real_dtype())
        nearest = offset_sum(x, NEAREST_OFFSETS)
        diagonal = offset_sum(x, DIAGONAL_OFFSETS)
        return self.J * nearest + self.J2 * diagonal + self.h

    def site_energies(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy terms of each site at ``s_i = -1, +1``; shape ``(..., L, L, 2)``."""
        return _two_state_site_energies(self.local_field(s))

    def order_parameter(self, s: jnp.ndarray) -> jnp.ndarray:
        """``|m|`` per spin of spins ``(..., L, L)``; float32, shape ``(...)``."""
        return jnp.abs(magnetization(s))

    def to_dict(self) -> dict:
        """Return the model name and couplings, as stored in data files."""
        return {"model": self.name, **asdict(self)}


class _PairTableModel:
    """Shared code of q-state models with ``H = -J sum_<ij> C[s_i, s_j]``.

    Subclasses are dataclasses with fields ``q`` and ``J`` and define
    ``_pair_table() -> (q, q)`` float64 NumPy array ``C``, which is symmetric.
    """

    encoding = "potts"
    interaction_offsets = NEAREST_OFFSETS

    def __post_init__(self):
        q = self.q
        if isinstance(q, bool) or int(q) != q or not 2 <= q <= MAX_POTTS_STATES:
            raise ValueError(
                f"q={q!r} is invalid: the number of states must be an integer "
                f"from 2 to {MAX_POTTS_STATES}"
            )
        object.__setattr__(self, "q", int(q))
        _check_finite(J=self.J)

    @property
    def n_states(self) -> int:
        return self.q

    @property
    def state_values(self) -> np.ndarray:
        values = np.arange(self.q, dtype=np.int8)
        values.setflags(write=False)
        return values

    def _table(self) -> jnp.ndarray:
        return jnp.asarray(self._pair_table(), dtype=real_dtype())

    def energy(self, s: jnp.ndarray) -> jnp.ndarray:
        """Total energy of states of shape ``(..., L, L)``; shape ``(...)``."""
        # C[s_i, s_j] summed over the bonds, as one-hot(s_i) . C . one-hot(s_j).
        one_hot = jax.nn.one_hot(s, self.q, dtype=real_dtype())
        coupled = one_hot @ self._table()
        bonds = sum(
            jnp.sum(coupled * shift(one_hot, offset, axes=(-3, -2)), axis=-1)
            for offset in NEAREST_OFFSETS
        )
        return -self.J * jnp.sum(bonds, axis=(-2, -1))

    def site_energies(self, s: jnp.ndarray) -> jnp.ndarray:
        """Energy of each site's bonds for each state; shape ``(..., L, L, q)``."""
        # counts[..., b] is the number of neighbours in state b, and the
        # energy of state a is -J sum_b counts[b] C[b, a].
        one_hot = jax.nn.one_hot(s, self.q, dtype=real_dtype())
        counts = offset_sum(one_hot, NEAREST_OFFSETS, axes=(-3, -2))
        return -self.J * counts @ self._table()

    def to_dict(self) -> dict:
        """Return the model name, ``q`` and ``J``, as stored in data files."""
        return {"model": self.name, "q": self.q, "J": self.J}


@dataclass(frozen=True)
class PottsModel(_PairTableModel):
    """Standard q-state Potts model on the periodic square lattice.

    ``H(s) = -J sum_<ij> delta(s_i, s_j)`` with states ``s_i = 0 .. q-1`` and
    each nearest-neighbour bond counted once. The order parameter is
    ``(q max_a n_a / N - 1) / (q - 1)``, where ``n_a`` is the number of sites
    in state ``a``: 1 when all sites agree, near 0 when the states are
    equally occupied.

    Attributes:
        q: number of states, 2 to 127.
        J: coupling (energy units, k_B = 1).
    """

    q: int
    J: float = 1.0

    name = "potts"

    def _pair_table(self) -> np.ndarray:
        return np.eye(self.q)

    def order_parameter(self, s: jnp.ndarray) -> jnp.ndarray:
        """Potts order parameter of states ``(..., L, L)``; float32, shape ``(...)``."""
        one_hot = jax.nn.one_hot(s, self.q, dtype=jnp.float32)
        fractions = jnp.mean(one_hot, axis=(-3, -2))
        return (self.q * jnp.max(fractions, axis=-1) - 1.0) / (self.q - 1.0)


@dataclass(frozen=True)
class ClockModel(_PairTableModel):
    """q-state clock model on the periodic square lattice.

    ``H(s) = -J sum_<ij> cos(2 pi (s_i - s_j) / q)`` with states
    ``s_i = 0 .. q-1`` (angles ``2 pi s_i / q``) and each nearest-neighbour
    bond counted once. The order parameter is the modulus of the
    magnetization, ``|sum_k exp(2 pi i s_k / q)| / N``.

    Attributes:
        q: number of states, 2 to 127.
        J: coupling (energy units, k_B = 1).
    """

    q: int
    J: float = 1.0

    name = "clock"

    def _pair_table(self) -> np.ndarray:
        states = np.arange(self.q)
        return np.cos(2.0 * np.pi * (states[:, None] - states[None, :]) / self.q)

    def order_parameter(self, s: jnp.ndarray) -> jnp.ndarray:
        """``|m|`` of the clock angles of ``(..., L, L)``; float32, shape ``(...)``."""
        angle = (2.0 * np.pi / self.q) * s.astype(jnp.float32)
        m_x = jnp.mean(jnp.cos(angle), axis=(-2, -1))
        m_y = jnp.mean(jnp.sin(angle), axis=(-2, -1))
        return jnp.hypot(m_x, m_y)


MODELS = {
    model.name: model for model in (IsingModel, IsingNNNModel, PottsModel, ClockModel)
} | {EdwardsAndersonModel.name: EdwardsAndersonModel}


def model_from_dict(attrs: dict, *, bonds=None):
    """Build a model from the attributes that ``to_dict`` wrote.

    Args:
        attrs: a dict with ``"model"`` (a key of :data:`MODELS`) and the
            model's couplings; other keys, such as the temperature of a data
            set, are ignored.
        bonds: float array ``(2, L, L)``, required for ``"spin-glass"`` and
            rejected otherwise.

    Raises:
        ValueError: for an unknown model, a missing coupling, or bonds that
            are missing or not expected.
    """
    name = attrs.get("model")
    if name not in MODELS:
        raise ValueError(f"model={name!r} is invalid: use one of {sorted(MODELS)}")
    if name == EdwardsAndersonModel.name:
        if bonds is None:
            raise ValueError(
                "model='spin-glass' needs its bonds: pass the (2, L, L) array "
                "stored as 'bonds' next to the spins"
            )
        return EdwardsAndersonModel(
            bonds,
            distribution=attrs.get("bond_distribution"),
            seed=attrs.get("bond_seed"),
        )
    if bonds is not None:
        raise ValueError(
            f"bonds were given for model={name!r}, which has uniform couplings; "
            "pass bonds only for model='spin-glass'"
        )
    cls = MODELS[name]
    names = [item.name for item in dataclasses.fields(cls)]
    required = [
        item.name
        for item in dataclasses.fields(cls)
        if item.default is dataclasses.MISSING
    ]
    missing = [key for key in required if key not in attrs]
    if missing:
        raise ValueError(
            f"attrs of model={name!r} are missing {missing}; store them with "
            "the model's to_dict()"
        )
    return cls(**{key: attrs[key] for key in names if key in attrs})
