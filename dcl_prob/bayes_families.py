"""Physical coupling models for :mod:`dcl_prob.bayes`: energies linear in the couplings.

Each family writes the energy as ``E_theta(s) = -theta . S(s)`` with a flat
coupling vector ``theta`` of shape ``(p,)`` and sufficient statistics ``S(s)``
of shape ``(p,)``, so the Boltzmann weight at temperature ``T`` (k_B = 1) is
``exp(theta . S(s) / T)``. A family provides:

- ``sites()``: the NumPyro sample sites ``(name, shape)`` whose values,
  flattened in order, form ``theta``, and ``dimension``, the length ``p``
  of ``theta``;
- ``pl_features(spins)``: arrays computed once from the data, and
  ``log_pl(theta, features, temperature)``: the log pseudo-likelihood of each
  configuration, ``sum_i log p(s_i | rest)`` with the exact single-site
  conditionals, shape ``(n,)``;
- ``log_conditionals(theta, spins, temperature)``: ``log p(s_i | rest)`` of
  every site, shape ``(n, L, L)``, computed directly from the spins;
- ``statistics(spins)``: ``S(s)`` of each configuration, shape ``(n, p)``;
- ``hamiltonian(values)``: the model of :mod:`dcl_prob.hamiltonians` with
  the given couplings, which the posterior predictive checks simulate;
- ``order_parameter(spins)`` and ``correlation(spins, distances)``: the
  statistics that the posterior predictive checks compare.

Families are frozen dataclasses, hashable by value, so they can be static
arguments of ``jax.jit``. Spins are int8 of shape ``(n, L, L)`` on the
periodic square lattice: -1/+1 for the Ising models and the spin glass, the
states ``0 .. q-1`` for the Potts model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.hamiltonians import (
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
)
from dcl_prob.lattice import DIAGONAL_OFFSETS, NEAREST_OFFSETS, offset_sum, shift

__all__ = [
    "ISING_COUPLINGS",
    "MODEL_NAMES",
    "IsingCouplings",
    "PottsCouplings",
    "SpinGlassCouplings",
    "coupling_family",
]

# The Ising couplings in the order of the flat vector theta.
ISING_COUPLINGS = ("J", "J2", "h")
# Site patterns of the Ising conditionals: (s_i * nearest-neighbour sum,
# s_i * diagonal sum, s_i), with values in {-4, -2, 0, 2, 4}^2 x {-1, 1}.
_ISING_PATTERNS = np.array(
    list(itertools.product(range(-4, 5, 2), range(-4, 5, 2), (-1, 1))),
    dtype=np.float32,
)


def _pm1(spins) -> np.ndarray:
    return np.asarray(spins).astype(np.float32)


class _Family:
    """Methods shared by the coupling families."""

    @property
    def dimension(self) -> int:
        """Number ``p`` of couplings, the length of ``theta``."""
        return sum(math.prod(shape) for _, shape in self.sites())

    def flatten(self, values: dict) -> jax.Array:
        """Concatenate the site values ``{name: array}`` into ``theta``, ``(p,)``."""
        return jnp.concatenate(
            [jnp.reshape(values[name], (-1,)) for name, _ in self.sites()]
        )

    def unflatten(self, theta) -> dict:
        """Split ``theta`` of shape ``(..., p)`` into ``{name: (..., *shape)}``."""
        values, start = {}, 0
        for name, shape in self.sites():
            size = math.prod(shape)
            part = theta[..., start : start + size]
            values[name] = part.reshape(theta.shape[:-1] + shape)
            start += size
        return values


@dataclass(frozen=True)
class IsingCouplings(_Family):
    """Ising couplings, a subset of ``J`` (nearest), ``J2`` (diagonal) and ``h``.

    ``E(s) = -J sum_nn s_i s_j - J2 sum_nnn s_i s_j - h sum_i s_i`` with each
    bond counted once, as in :class:`dcl_prob.hamiltonians.IsingNNNModel`;
    couplings that are not in ``couplings`` are zero. The conditional of a
    site is ``p(s_i | rest) = sigmoid(2 s_i h_i / T)`` with the local field
    ``h_i = J sum_nn s_j + J2 sum_nnn s_j + h``. It depends on the data only
    through ``u_i = (s_i sum_nn s_j, s_i sum_nnn s_j, s_i)``, which takes 50
    values, so the features are the counts of each value in each
    configuration, shape ``(n, 50)``.
    """

    couplings: tuple[str, ...] = ("J",)

    encoding = "pm1"

    def __post_init__(self):
        couplings = tuple(self.couplings)
        ordered = tuple(name for name in ISING_COUPLINGS if name in couplings)
        if (
            not couplings
            or ordered != couplings
            or len(set(couplings)) != len(couplings)
        ):
            raise ValueError(
                f"couplings={couplings!r} are invalid: pass distinct names from "
                f"{ISING_COUPLINGS} in that order, such as ('J',) or ('J', 'J2')"
            )
        object.__setattr__(self, "couplings", couplings)

    @property
    def name(self) -> str:
        """Model name, the couplings joined by ``+`` (``"J+J2"``)."""
        return "+".join(self.couplings)

    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Return ``(name, shape)`` of each coupling: scalars, shape ``()``."""
        return tuple((name, ()) for name in self.couplings)

    def _columns(self) -> list[int]:
        return [ISING_COUPLINGS.index(name) for name in self.couplings]

    def pl_features(self, spins) -> jax.Array:
        """Counts of each site pattern per configuration; float32 ``(n, 50)``."""
        x = _pm1(spins)
        nearest = np.asarray(offset_sum(x, NEAREST_OFFSETS))
        diagonal = np.asarray(offset_sum(x, DIAGONAL_OFFSETS))
        # Index of (x * nearest, x * diagonal, x) in _ISING_PATTERNS.
        index = ((x * nearest + 4) / 2) * 10 + ((x * diagonal + 4) / 2) * 2
        index = (index + (x + 1) / 2).astype(np.int64).reshape(len(x), -1)
        n_patterns = len(_ISING_PATTERNS)
        flat = index + n_patterns * np.arange(len(x))[:, None]
        counts = np.bincount(flat.ravel(), minlength=n_patterns * len(x))
        return jnp.asarray(counts.reshape(len(x), n_patterns), jnp.float32)

    def log_pl(self, theta, features, temperature) -> jax.Array:
        """Log pseudo-likelihood of each configuration, shape ``(n,)``."""
        patterns = jnp.asarray(_ISING_PATTERNS[:, self._columns()], theta.dtype)
        log_conditional = jax.nn.log_sigmoid(2.0 * (patterns @ theta) / temperature)
        return features.astype(theta.dtype) @ log_conditional

    def log_conditionals(self, theta, spins, temperature) -> jax.Array:
        """``log p(s_i | rest)`` of every site from the local field; ``(n, L, L)``.

        The same numbers as :meth:`log_pl` before the sum over sites, computed
        site by site instead of through the pattern counts.
        """
        x = jnp.asarray(spins, theta.dtype)
        couplings = dict(zip(self.couplings, theta))
        field = couplings.get("J", 0.0) * offset_sum(x, NEAREST_OFFSETS)
        field += couplings.get("J2", 0.0) * offset_sum(x, DIAGONAL_OFFSETS)
        field += couplings.get("h", 0.0)
        return jax.nn.log_sigmoid(2.0 * x * field / temperature)

    def statistics(self, spins) -> jax.Array:
        """``(sum_nn s_i s_j, sum_nnn s_i s_j, sum_i s_i)`` columns; ``(n, p)``."""
        x = jnp.asarray(spins, jnp.float32)
        nearest = sum(x * shift(x, offset) for offset in NEAREST_OFFSETS)
        diagonal = sum(x * shift(x, offset) for offset in DIAGONAL_OFFSETS)
        columns = [nearest, diagonal, x]
        selected = [columns[index] for index in self._columns()]
        return jnp.stack([jnp.sum(c, axis=(-2, -1)) for c in selected], axis=-1)

    def hamiltonian(self, values: dict):
        """Return :class:`IsingModel` for ``J`` alone, else :class:`IsingNNNModel`."""
        couplings = {name: float(values.get(name, 0.0)) for name in ISING_COUPLINGS}
        if self.couplings == ("J",):
            return IsingModel(J=couplings["J"])
        return IsingNNNModel(**couplings)

    def order_parameter(self, spins) -> jax.Array:
        """``|m|`` per spin; float32 ``(n,)``."""
        return jnp.abs(jnp.mean(jnp.asarray(spins, jnp.float32), axis=(-2, -1)))

    def correlation(self, spins, distances) -> jax.Array:
        """``C(r) = <s_i s_{i+r}>`` along both axes; float32 ``(n, len(distances))``."""
        return _product_correlation(jnp.asarray(spins, jnp.float32), distances)


def _product_correlation(x: jax.Array, distances) -> jax.Array:
    """Mean of ``x_i * x_{i + r}`` over sites and both lattice axes, per ``r``."""
    values = [
        0.5 * jnp.mean(x * (shift(x, (0, r)) + shift(x, (r, 0))), axis=(-2, -1))
        for r in distances
    ]
    return jnp.stack(values, axis=-1)


def _potts_patterns(q: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Enumerate the site patterns of the q-state Potts conditional.

    A pattern is ``(c_self, c)``: the number of neighbours in the site's own
    state and the neighbour counts of the ``m = min(q, 4)`` most frequent
    states, sorted in decreasing order. The other ``q - m`` states have no
    neighbour because the four counts sum to 4.

    Returns:
        ``(self_counts (K,), counts (K, m), m)`` as float32 arrays.
    """
    m = min(q, 4)
    rows = []
    for counts in itertools.product(range(5), repeat=m):
        if sum(counts) != 4 or list(counts) != sorted(counts, reverse=True):
            continue
        self_values = set(counts) | ({0} if q > m else set())
        rows += [(c_self, *counts) for c_self in sorted(self_values)]
    table = np.array(rows, dtype=np.float32)
    return table[:, 0], table[:, 1:], m


@dataclass(frozen=True)
class PottsCouplings(_Family):
    """Coupling ``J`` of the q-state Potts model ``E = -J sum_<ij> delta(s_i, s_j)``.

    The conditional of a site is a softmax over the ``q`` states,
    ``p(s_i = a | rest) = exp(J c_a / T) / sum_b exp(J c_b / T)``, where ``c_a``
    is the number of nearest neighbours in state ``a``. The features are the
    counts per configuration of each pattern of :func:`_potts_patterns`.
    """

    q: int

    encoding = "potts"
    name = "potts"

    def __post_init__(self):
        PottsModel(q=self.q)  # validates q
        object.__setattr__(self, "q", int(self.q))

    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Return ``(name, shape)`` of the one coupling: ``(("J", ()),)``."""
        return (("J", ()),)

    def pl_features(self, spins) -> jax.Array:
        """Counts of each site pattern per configuration; float32 ``(n, K)``."""
        spins = np.asarray(spins)
        n = len(spins)
        one_hot = np.eye(self.q, dtype=np.int32)[spins]
        counts = np.asarray(offset_sum(one_hot, NEAREST_OFFSETS, axes=(-3, -2)))
        self_counts = np.take_along_axis(counts, spins[..., None].astype(int), -1)
        self_patterns, count_patterns, m = _potts_patterns(self.q)
        top = -np.sort(-counts, axis=-1)[..., :m]
        # Encode (c_self, c) in base 5 and look the pattern up.
        digits = np.concatenate([self_counts, top], axis=-1).reshape(n, -1, m + 1)
        codes = digits @ (5 ** np.arange(m + 1))
        table = np.full(5 ** (m + 1), -1, dtype=np.int64)
        pattern_digits = np.concatenate(
            [self_patterns[:, None], count_patterns], axis=1
        ).astype(np.int64)
        table[pattern_digits @ (5 ** np.arange(m + 1))] = np.arange(len(pattern_digits))
        index = table[codes]
        n_patterns = len(pattern_digits)
        flat = index + n_patterns * np.arange(n)[:, None]
        totals = np.bincount(flat.ravel(), minlength=n_patterns * n)
        return jnp.asarray(totals.reshape(n, n_patterns), jnp.float32)

    def log_pl(self, theta, features, temperature) -> jax.Array:
        """Log pseudo-likelihood of each configuration, shape ``(n,)``."""
        self_patterns, count_patterns, m = _potts_patterns(self.q)
        beta_j = theta[0] / temperature
        exponents = beta_j * jnp.asarray(count_patterns, theta.dtype)
        if self.q > m:
            # The q - m states without neighbours contribute exp(0) each.
            others = jnp.full((len(exponents), 1), np.log(self.q - m), theta.dtype)
            exponents = jnp.concatenate([exponents, others], axis=1)
        log_norm = jax.nn.logsumexp(exponents, axis=1)
        log_conditional = beta_j * jnp.asarray(self_patterns, theta.dtype) - log_norm
        return features.astype(theta.dtype) @ log_conditional

    def log_conditionals(self, theta, spins, temperature) -> jax.Array:
        """``log p(s_i | rest)`` of every site from neighbour counts; ``(n, L, L)``."""
        states = jnp.asarray(spins)
        one_hot = jax.nn.one_hot(states, self.q, dtype=theta.dtype)
        counts = offset_sum(one_hot, NEAREST_OFFSETS, axes=(-3, -2))
        log_softmax = jax.nn.log_softmax(theta[0] * counts / temperature, axis=-1)
        return jnp.take_along_axis(log_softmax, states[..., None], axis=-1)[..., 0]

    def statistics(self, spins) -> jax.Array:
        """Number of nearest-neighbour bonds in equal states; float32 ``(n, 1)``."""
        s = jnp.asarray(spins)
        same = sum(
            (s == shift(s, offset)).astype(jnp.float32) for offset in NEAREST_OFFSETS
        )
        return jnp.sum(same, axis=(-2, -1))[:, None]

    def hamiltonian(self, values: dict) -> PottsModel:
        """Return the :class:`PottsModel` with coupling ``values["J"]`` (energy
        units)."""
        return PottsModel(q=self.q, J=float(values["J"]))

    def order_parameter(self, spins) -> jax.Array:
        """Potts order parameter of :class:`PottsModel`; float32 ``(n,)``."""
        return PottsModel(q=self.q).order_parameter(jnp.asarray(spins))

    def correlation(self, spins, distances) -> jax.Array:
        """``C(r) = (q P(s_i = s_{i+r}) - 1) / (q - 1)``; float32 ``(n, len(r))``."""
        one_hot = jax.nn.one_hot(jnp.asarray(spins), self.q, dtype=jnp.float32)
        values = []
        for r in distances:
            same = 0.5 * (
                jnp.sum(one_hot * shift(one_hot, (0, r), axes=(-3, -2)), axis=-1)
                + jnp.sum(one_hot * shift(one_hot, (r, 0), axes=(-3, -2)), axis=-1)
            )
            values.append(jnp.mean(same, axis=(-2, -1)))
        return (self.q * jnp.stack(values, axis=-1) - 1.0) / (self.q - 1.0)


@dataclass(frozen=True)
class SpinGlassCouplings(_Family):
    """One coupling per bond of the ``L x L`` Edwards-Anderson spin glass.

    ``E(s) = -sum_ij (J_right[i, j] s_ij s_i,j+1 + J_down[i, j] s_ij s_i+1,j)``
    with periodic wrap. The bonds have the layout of
    :class:`dcl_prob.spin_glass.EdwardsAndersonModel`, where ``bonds[0]`` is
    ``J_right`` and ``bonds[1]`` is ``J_down``. ``theta`` is
    ``concatenate([J_right.ravel(), J_down.ravel()])``, shape ``(2 L^2,)``.
    The features are the spins themselves as float32.
    """

    L: int

    encoding = "pm1"
    name = "spin-glass"

    def sites(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Return ``(name, shape)`` of the bond couplings: ``J_right`` and
        ``J_down``, each ``(L, L)``."""
        return (("J_right", (self.L, self.L)), ("J_down", (self.L, self.L)))

    def pl_features(self, spins) -> jax.Array:
        """Return the spins as float32 ``(n, L, L)``: with one coupling per bond
        no summary of a configuration is smaller than the configuration."""
        return jnp.asarray(spins, jnp.float32)

    def _local_field(self, theta, x):
        bonds = theta.reshape(2, self.L, self.L)
        right = shift(x, (0, 1))
        down = shift(x, (1, 0))
        field = bonds[0] * right + bonds[1] * down
        # The left bond of a site is the right bond of its left neighbour.
        return field + shift(bonds[0] * x, (0, 1), -1) + shift(bonds[1] * x, (1, 0), -1)

    def log_pl(self, theta, features, temperature) -> jax.Array:
        """Log pseudo-likelihood of each configuration, shape ``(n,)``."""
        terms = self.log_conditionals(theta, features, temperature)
        return jnp.sum(terms, axis=(-2, -1))

    def log_conditionals(self, theta, spins, temperature) -> jax.Array:
        """``log p(s_i | rest)`` of every site from the local field; ``(n, L, L)``."""
        x = jnp.asarray(spins).astype(theta.dtype)
        field = self._local_field(theta, x)
        return jax.nn.log_sigmoid(2.0 * x * field / temperature)

    def statistics(self, spins) -> jax.Array:
        """Bond products ``s_i s_j`` in the order of ``theta``; ``(n, 2 L^2)``."""
        x = jnp.asarray(spins, jnp.float32)
        products = jnp.stack([x * shift(x, (0, 1)), x * shift(x, (1, 0))], axis=1)
        return products.reshape(len(x), -1)

    def hamiltonian(self, values: dict) -> EdwardsAndersonModel:
        """Return the :class:`EdwardsAndersonModel` with the bonds
        ``values["J_right"]`` and ``values["J_down"]``, each ``(L, L)``."""
        bonds = np.stack([np.asarray(values["J_right"]), np.asarray(values["J_down"])])
        return EdwardsAndersonModel(bonds)

    def order_parameter(self, spins) -> jax.Array:
        """``|m|`` per spin; float32 ``(n,)``."""
        return jnp.abs(jnp.mean(jnp.asarray(spins, jnp.float32), axis=(-2, -1)))

    def correlation(self, spins, distances) -> jax.Array:
        """``C(r) = <s_i s_{i+r}>`` along both axes; float32 ``(n, len(r))``."""
        return _product_correlation(jnp.asarray(spins, jnp.float32), distances)


MODEL_NAMES = ("J", "J+J2", "J+J2+h", "potts", "spin-glass")


def coupling_family(model: str, *, L: int, q: int | None = None):
    """Return the coupling family of a model name.

    Args:
        model: ``"potts"``, ``"spin-glass"``, or Ising couplings joined by
            ``+`` in the order ``J``, ``J2``, ``h`` (``"J"``, ``"J+J2"``,
            ``"J+J2+h"``, ``"J+h"``).
        L: linear lattice size of the data.
        q: number of Potts states; required for ``"potts"`` only.

    Raises:
        ValueError: for an unknown name, or a missing or unexpected ``q``.
    """
    if model == "potts":
        if q is None:
            raise ValueError("model='potts' needs the number of states: pass q=...")
        return PottsCouplings(q=q)
    if q is not None:
        raise ValueError(
            f"q={q!r} was given for model={model!r}; pass q only with model='potts'"
        )
    if model == "spin-glass":
        return SpinGlassCouplings(L=int(L))
    names = tuple(model.split("+")) if isinstance(model, str) else ()
    try:
        return IsingCouplings(names)
    except ValueError:
        raise ValueError(
            f"model={model!r} is invalid: use one of {MODEL_NAMES} (Ising couplings "
            "joined by '+' in the order J, J2, h)"
        ) from None
