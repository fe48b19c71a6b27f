"""Autoregressive GRU over lattice sites, and its NumPyro distribution.

The sites of an ``L x L`` lattice are visited in raster (row-major) order:
site ``k`` is ``(k // L, k % L)``. At step ``k`` the GRU reads the nearest
neighbours of site ``k`` that were already visited (up, left and, across the
periodic boundary, down and right) and a learned per-site input. The
conditional of site ``k`` is a linear readout of the resulting hidden state, so
``log q(s) = sum_k log q(s_k | s_<k)`` is exact and normalized, and ancestral
sampling draws exact samples.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from dcl_prob.lattice import check_lattice_size

__all__ = ["AutoregressiveGRU", "AutoregressiveSpins", "spin_support"]

_N_NEIGHBOURS = 4


def _visited_neighbours(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``(N, 4)`` of the up, left, down, right neighbours of each
    site and a float mask that is 1 where that neighbour precedes the site."""
    k = np.arange(L * L)
    i, j = k // L, k % L
    neighbours = np.stack(
        [
            ((i - 1) % L) * L + j,
            i * L + (j - 1) % L,
            ((i + 1) % L) * L + j,
            i * L + (j + 1) % L,
        ],
        axis=1,
    )
    mask = (neighbours < k[:, None]).astype(np.float32)
    return neighbours, mask


class AutoregressiveGRU(eqx.Module):
    """One GRU layer that models ``log q(s)`` of Ising spins on an ``L x L`` torus.

    Inputs at step ``k`` are the already visited nearest neighbours of site
    ``k`` (0 for those not yet visited) and a learned per-site vector that
    encodes the position on the lattice.
    """

    input_weight: jax.Array  # (4, 3 H) float32, neighbour spins -> gates
    site_bias: jax.Array  # (N, 3 H) float32, per-site gate input
    hidden_weight: jax.Array  # (H, 3 H) float32, recurrent weights
    hidden_bias: jax.Array  # (H,) float32, recurrent bias of the candidate gate
    initial_hidden: jax.Array  # (H,) float32
    output_weight: jax.Array  # (H,) float32, hidden -> logit of s_k = +1
    site_output_bias: jax.Array  # (N,) float32
    L: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, L: int, hidden_size: int = 64, *, key: jax.Array):
        L = check_lattice_size(L)
        n_sites = L * L
        keys = jax.random.split(key, 3)
        scale_in = 1.0 / math.sqrt(_N_NEIGHBOURS)
        scale_hidden = 1.0 / math.sqrt(hidden_size)
        self.L = L
        self.hidden_size = hidden_size
        self.input_weight = scale_in * jax.random.normal(
            keys[0], (_N_NEIGHBOURS, 3 * hidden_size)
        )
        self.site_bias = jnp.zeros((n_sites, 3 * hidden_size))
        self.hidden_weight = scale_hidden * jax.random.normal(
            keys[1], (hidden_size, 3 * hidden_size)
        )
        self.hidden_bias = jnp.zeros((hidden_size,))
        self.initial_hidden = jnp.zeros((hidden_size,))
        self.output_weight = (
            0.1 * scale_hidden * jax.random.normal(keys[2], (hidden_size,))
        )
        self.site_output_bias = jnp.zeros((n_sites,))

    def _gru_step(self, h: jax.Array, gate_input: jax.Array) -> jax.Array:
        """Advance hidden states ``h`` (B, H) with input pre-activations (B, 3 H)."""
        H = self.hidden_size
        recurrent = h @ self.hidden_weight
        z = jax.nn.sigmoid(gate_input[:, :H] + recurrent[:, :H])
        r = jax.nn.sigmoid(gate_input[:, H : 2 * H] + recurrent[:, H : 2 * H])
        candidate = jnp.tanh(
            gate_input[:, 2 * H :] + r * (recurrent[:, 2 * H :] + self.hidden_bias)
        )
        return (1.0 - z) * candidate + z * h

    def logits(self, s: jax.Array) -> jax.Array:
        """Logits of ``q(s_k = +1 | s_<k)`` for every site, teacher forced.

        Args:
            s: spins +-1 of shape ``(B, L, L)``.

        Returns:
            float32 array of shape ``(B, N)`` with ``N = L * L``.
        """
        neighbours, mask = _visited_neighbours(self.L)
        flat = s.reshape(s.shape[0], -1).astype(jnp.float32)
        inputs = flat[:, neighbours] * mask  # (B, N, 4)
        gate_inputs = inputs @ self.input_weight + self.site_bias  # (B, N, 3H)
        h0 = jnp.broadcast_to(self.initial_hidden, (s.shape[0], self.hidden_size))

        def step(h, gate_input):
            h = self._gru_step(h, gate_input)
            return h, h @ self.output_weight

        _, logits = jax.lax.scan(step, h0, jnp.swapaxes(gate_inputs, 0, 1))
        return jnp.swapaxes(logits, 0, 1) + self.site_output_bias

    def log_prob(self, s: jax.Array) -> jax.Array:
        """Exact ``log q(s)`` of spins ``(B, L, L)``; float32, shape ``(B,)``."""
        logits = self.logits(s)
        signs = s.reshape(s.shape[0], -1).astype(jnp.float32)
        return jnp.sum(jax.nn.log_sigmoid(signs * logits), axis=-1)

    def sample(self, n: int, *, key: jax.Array) -> jax.Array:
        """Draw ``n`` exact ancestral samples; int8 spins of shape ``(n, L, L)``."""
        neighbours, mask = _visited_neighbours(self.L)
        n_sites = self.L * self.L
        uniforms = jax.random.uniform(key, (n_sites, n))
        h0 = jnp.broadcast_to(self.initial_hidden, (n, self.hidden_size))
        flat0 = jnp.zeros((n, n_sites), jnp.float32)

        def step(carry, xs):
            h, flat = carry
            k, site_neighbours, site_mask, site_bias, out_bias, u = xs
            inputs = flat[:, site_neighbours] * site_mask  # (n, 4)
            h = self._gru_step(h, inputs @ self.input_weight + site_bias)
            p_up = jax.nn.sigmoid(h @ self.output_weight + out_bias)
            spin = jnp.where(u < p_up, 1.0, -1.0)
            flat = flat.at[:, k].set(spin)
            return (h, flat), None

        xs = (
            jnp.arange(n_sites),
            jnp.asarray(neighbours),
            jnp.asarray(mask),
            self.site_bias,
            self.site_output_bias,
            uniforms,
        )
        (_, flat), _ = jax.lax.scan(step, (h0, flat0), xs)
        return flat.reshape(n, self.L, self.L).astype(jnp.int8)


class _Spins(constraints.ParameterFreeConstraint):
    """Values in {-1, +1}, one spin per element."""

    is_discrete = True
    event_dim = 0

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return xp.equal(x, 1) | xp.equal(x, -1)

    def feasible_like(self, prototype):
        return jnp.ones(jnp.shape(prototype), jnp.int8)


spin_support = _Spins()


class AutoregressiveSpins(dist.Distribution):
    """NumPyro distribution over Ising configurations given by an autoregressive net.

    The event shape is the lattice shape ``(L, L)`` and the batch shape is
    ``()``. Samples are int8 spins +-1. With ``z2=True`` the distribution is
    symmetrised under a global spin flip, ``q_z2(s) = (q(s) + q(-s)) / 2``,
    which stays normalized and is sampled by flipping a sample of ``q`` with
    probability 1/2.

    Args:
        net: an :class:`AutoregressiveGRU`.
        z2: symmetrise under the global spin flip.
        validate_args: check that values passed to :meth:`log_prob` are spins.
    """

    support = constraints.independent(spin_support, 2)
    arg_constraints = {}
    has_enumerate_support = True
    # Samples are discrete, so no gradient flows through them. NumPyro's default
    # ``has_rsample`` (0.22) is True for a distribution without arg_constraints, which
    # would make ``TraceGraph_ELBO`` drop the score-function term of a guide site.
    has_rsample = False
    pytree_data_fields = ("net",)
    pytree_aux_fields = ("z2",)

    def __init__(self, net: AutoregressiveGRU, *, z2: bool = False, validate_args=None):
        self.net = net
        self.z2 = bool(z2)
        super().__init__(
            batch_shape=(), event_shape=(net.L, net.L), validate_args=validate_args
        )

    def sample(self, key, sample_shape=()):
        """Draw exact samples; int8 array of shape ``sample_shape + (L, L)``."""
        n = math.prod(sample_shape)
        key_sample, key_flip = jax.random.split(key)
        s = self.net.sample(n, key=key_sample)
        if self.z2:
            flip = jax.random.bernoulli(key_flip, 0.5, (n, 1, 1))
            s = jnp.where(flip, -s, s)
        return s.reshape(tuple(sample_shape) + self.event_shape)

    def log_prob(self, value):
        """Exact normalized ``log q`` of spins of shape ``(..., L, L)``."""
        if self._validate_args:
            self._validate_sample(value)
        batch_shape = jnp.shape(value)[:-2]
        flat = jnp.reshape(value, (-1,) + self.event_shape)
        log_q = self.net.log_prob(flat)
        if self.z2:
            log_q = jnp.logaddexp(log_q, self.net.log_prob(-flat)) - math.log(2.0)
        return log_q.reshape(batch_shape)

    def enumerate_support(self, expand=True):
        """Return every configuration of the lattice, for at most 16 sites.

        Returns int8 spins of shape ``(2**N, L, L)`` in binary order: bit ``k``
        of the row index is 1 where site ``k`` is -1.
        """
        n_sites = self.net.L**2
        if n_sites > 16:
            raise ValueError(
                f"enumerate_support needs at most 16 sites, got L={self.net.L} "
                f"({n_sites} sites); sample from the distribution instead"
            )
        index = np.arange(2**n_sites)[:, None]
        bits = (index >> np.arange(n_sites)) & 1
        configs = (1 - 2 * bits).astype(np.int8).reshape(-1, self.net.L, self.net.L)
        return jnp.asarray(configs)

    def _validate_sample(self, value):
        mask = self.support(value)
        if isinstance(mask, jax.core.Tracer):
            return mask  # values are unknown while tracing under jit
        if not bool(jnp.all(mask)):
            values = np.asarray(value)
            bad = np.unique(values[~np.asarray(spin_support(values))])
            raise ValueError(
                f"AutoregressiveSpins.log_prob expects Ising spins -1/+1, got values "
                f"{bad[:5].tolist()}; map 0/1 data with s = 2 * x - 1"
            )
        return mask
