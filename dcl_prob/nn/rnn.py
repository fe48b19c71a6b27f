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

__all__ = [
    "POSITION_ENCODINGS",
    "AutoregressiveGRU",
    "AutoregressiveSpins",
    "FixedTemperatureGRU",
    "spin_support",
]

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


POSITION_ENCODINGS = ("site", "boundary")


def _boundary_features(L: int) -> np.ndarray:
    """Position features ``(N, 9)`` that do not depend on ``L`` in meaning.

    Columns: a constant 1, first row, first column, last row, last column and
    the four corners. In raster order on the torus these are the only places
    where the set of visited neighbours differs from the bulk.
    """
    k = np.arange(L * L)
    i, j = k // L, k % L
    first_row, first_col = i == 0, j == 0
    last_row, last_col = i == L - 1, j == L - 1
    columns = [
        np.ones(L * L, bool),
        first_row,
        first_col,
        last_row,
        last_col,
        first_row & first_col,
        first_row & last_col,
        last_row & first_col,
        last_row & last_col,
    ]
    return np.stack(columns, axis=1).astype(np.float32)


_N_BOUNDARY_FEATURES = 9
_N_BETA_FEATURES = 2  # beta and beta**2


def _beta_features(beta: jax.Array) -> jax.Array:
    """Features ``(B, 2)`` of inverse temperatures ``(B,)``."""
    return jnp.stack([beta, beta * beta], axis=-1)


class AutoregressiveGRU(eqx.Module):
    """One GRU layer that models ``log q(s)`` of Ising spins on an ``L x L`` torus.

    Inputs at step ``k`` are the already visited nearest neighbours of site
    ``k`` (0 for those not yet visited) and an encoding of the position of
    the site:

    - ``position_encoding="site"``: a learned vector per site (its
      parameters have ``N = L * L`` rows, so the network fits one ``L``);
    - ``position_encoding="boundary"``: learned vectors for the first and
      last row and column and the corners only. The parameters do not depend
      on ``L``, so :meth:`resized` carries a trained network to another size.

    With ``conditioned=True`` the network also takes the inverse temperature
    ``beta`` (energy units, k_B = 1): the neighbour inputs are repeated
    multiplied by ``beta``, ``(beta, beta**2)`` enter every gate, and the
    logit gains a term proportional to ``beta``. One network then gives a
    normalized ``q(s | beta)`` for every ``beta``; :meth:`at_temperature`
    fixes ``beta`` and returns an object that :class:`AutoregressiveSpins`
    accepts.

    Args:
        L: linear lattice size.
        hidden_size: GRU hidden units ``H``.
        key: PRNG key for the initial weights.
        position_encoding: ``"site"`` or ``"boundary"``.
        conditioned: take ``beta`` as an input.
    """

    input_weight: jax.Array  # (4, 3 H) or (8, 3 H) float32, neighbour inputs -> gates
    site_bias: jax.Array  # (N or 9, 3 H) float32, position -> gate input
    hidden_weight: jax.Array  # (H, 3 H) float32, recurrent weights
    hidden_bias: jax.Array  # (H,) float32, recurrent bias of the candidate gate
    initial_hidden: jax.Array  # (H,) float32
    output_weight: jax.Array  # (H,) float32, hidden -> logit of s_k = +1
    site_output_bias: jax.Array  # (N or 9,) float32, position -> logit
    beta_weight: jax.Array | None  # (2, 3 H) float32, (beta, beta^2) -> gates
    beta_output_weight: jax.Array | None  # (H,) float32, beta * hidden -> logit
    L: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    position_encoding: str = eqx.field(static=True)
    conditioned: bool = eqx.field(static=True)

    def __init__(
        self,
        L: int,
        hidden_size: int = 64,
        *,
        key: jax.Array,
        position_encoding: str = "site",
        conditioned: bool = False,
    ):
        L = check_lattice_size(L)
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding={position_encoding!r} is invalid: use one of "
                f"{list(POSITION_ENCODINGS)}"
            )
        if not (isinstance(hidden_size, int) and hidden_size >= 1):
            raise ValueError(
                f"hidden_size={hidden_size!r} is invalid: pass an integer >= 1"
            )
        n_positions = L * L if position_encoding == "site" else _N_BOUNDARY_FEATURES
        n_inputs = _N_NEIGHBOURS * (2 if conditioned else 1)
        keys = jax.random.split(key, 4)
        scale_in = 1.0 / math.sqrt(_N_NEIGHBOURS)
        scale_hidden = 1.0 / math.sqrt(hidden_size)
        self.L = L
        self.hidden_size = hidden_size
        self.position_encoding = position_encoding
        self.conditioned = bool(conditioned)
        self.input_weight = scale_in * jax.random.normal(
            keys[0], (n_inputs, 3 * hidden_size)
        )
        self.site_bias = jnp.zeros((n_positions, 3 * hidden_size))
        self.hidden_weight = scale_hidden * jax.random.normal(
            keys[1], (hidden_size, 3 * hidden_size)
        )
        self.hidden_bias = jnp.zeros((hidden_size,))
        self.initial_hidden = jnp.zeros((hidden_size,))
        self.output_weight = (
            0.1 * scale_hidden * jax.random.normal(keys[2], (hidden_size,))
        )
        self.site_output_bias = jnp.zeros((n_positions,))
        if conditioned:
            self.beta_weight = jnp.zeros((_N_BETA_FEATURES, 3 * hidden_size))
            self.beta_output_weight = (
                0.1 * scale_hidden * jax.random.normal(keys[3], (hidden_size,))
            )
        else:
            self.beta_weight = None
            self.beta_output_weight = None

    def resized(self, L: int) -> AutoregressiveGRU:
        """Return this network on an ``L x L`` lattice, with the same parameters.

        Only a network with ``position_encoding="boundary"`` has parameters
        that do not depend on the lattice size.

        Raises:
            ValueError: for a network with per-site parameters.
        """
        L = check_lattice_size(L)
        if L == self.L:
            return self
        if self.position_encoding != "boundary":
            raise ValueError(
                f"this q has per-site parameters for L={self.L} and cannot be "
                f"moved to L={L}; train one with position_encoding='boundary' "
                "(dcl fit --q-position boundary) or start a fresh q at that size"
            )
        skeleton = AutoregressiveGRU(
            L,
            self.hidden_size,
            key=jax.random.key(0),
            position_encoding=self.position_encoding,
            conditioned=self.conditioned,
        )
        # Only the static L differs, so the leaves line up one to one.
        return jax.tree.unflatten(jax.tree.structure(skeleton), jax.tree.leaves(self))

    def with_temperature_input(self, *, key: jax.Array) -> AutoregressiveGRU:
        """Return a conditioned copy that equals this network at every ``beta``.

        The new inputs (``beta`` times the neighbour spins, ``beta`` and
        ``beta**2``) start with zero weights, so ``q(s | beta)`` starts as
        this q at every temperature: a warm start for
        :func:`dcl_prob.variational.anneal_range`. ``key`` is unused by the
        copied weights and kept for a uniform constructor signature.

        Raises:
            ValueError: for a network that is already conditioned.
        """
        if self.conditioned:
            raise ValueError("this network already takes the temperature as input")
        fresh = AutoregressiveGRU(
            self.L,
            self.hidden_size,
            key=key,
            position_encoding=self.position_encoding,
            conditioned=True,
        )
        input_weight = jnp.concatenate(
            [self.input_weight, jnp.zeros_like(self.input_weight)], axis=0
        )
        names = (
            "site_bias",
            "hidden_weight",
            "hidden_bias",
            "initial_hidden",
            "output_weight",
            "site_output_bias",
        )
        fresh = eqx.tree_at(
            lambda net: [getattr(net, name) for name in names] + [net.input_weight],
            fresh,
            [getattr(self, name) for name in names] + [input_weight],
        )
        return eqx.tree_at(
            lambda net: net.beta_output_weight,
            fresh,
            jnp.zeros_like(fresh.beta_output_weight),
        )

    def at_temperature(self, temperature: float) -> FixedTemperatureGRU:
        """Fix the inverse temperature of a conditioned network to ``1 / T``.

        Raises:
            ValueError: for a network that is not conditioned, or a
                temperature that is not finite and positive.
        """
        if not self.conditioned:
            raise ValueError(
                "at_temperature needs a network built with conditioned=True; "
                "this q was trained at one temperature"
            )
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"temperature={temperature} is invalid: pass a finite value > 0"
            )
        return FixedTemperatureGRU(self, 1.0 / temperature)

    def _position_terms(self) -> tuple[jax.Array, jax.Array]:
        """Gate inputs ``(N, 3 H)`` and logit offsets ``(N,)`` of every site."""
        if self.position_encoding == "site":
            return self.site_bias, self.site_output_bias
        features = jnp.asarray(_boundary_features(self.L))
        return features @ self.site_bias, features @ self.site_output_bias

    def _check_beta(self, beta, batch: int) -> jax.Array | None:
        if not self.conditioned:
            if beta is not None:
                raise ValueError(
                    "beta was given, but this network is not conditioned on the "
                    "temperature; build it with conditioned=True"
                )
            return None
        if beta is None:
            raise ValueError(
                "this network is conditioned on the temperature: pass beta, or "
                "use net.at_temperature(T)"
            )
        return jnp.broadcast_to(jnp.asarray(beta, jnp.float32), (batch,))

    def _neighbour_inputs(self, x: jax.Array, beta: jax.Array | None) -> jax.Array:
        """Gate pre-activations ``(..., 3 H)`` from neighbour inputs ``(..., 4)``."""
        if beta is None:
            return x @ self.input_weight
        scaled = x * beta.reshape(beta.shape + (1,) * (x.ndim - 1))
        return jnp.concatenate([x, scaled], axis=-1) @ self.input_weight

    def _logit(self, h: jax.Array, beta: jax.Array | None) -> jax.Array:
        logit = h @ self.output_weight
        if beta is not None:
            logit = logit + beta * (h @ self.beta_output_weight)
        return logit

    def _initial(self, batch: int, beta: jax.Array | None):
        """Initial hidden states ``(B, H)`` and the beta gate term ``(B, 3 H)``."""
        h0 = jnp.broadcast_to(self.initial_hidden, (batch, self.hidden_size))
        if beta is None:
            return h0, 0.0
        return h0, _beta_features(beta) @ self.beta_weight

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

    def logits(self, s: jax.Array, beta=None) -> jax.Array:
        """Logits of ``q(s_k = +1 | s_<k)`` for every site, teacher forced.

        Args:
            s: spins +-1 of shape ``(B, L, L)``.
            beta: inverse temperature, scalar or ``(B,)``; only for a
                conditioned network.

        Returns:
            float32 array of shape ``(B, N)`` with ``N = L * L``.
        """
        batch = s.shape[0]
        beta = self._check_beta(beta, batch)
        neighbours, mask = _visited_neighbours(self.L)
        site_gates, site_logits = self._position_terms()
        flat = s.reshape(batch, -1).astype(jnp.float32)
        inputs = flat[:, neighbours] * mask  # (B, N, 4)
        h0, beta_gates = self._initial(batch, beta)
        gate_inputs = self._neighbour_inputs(inputs, beta) + site_gates  # (B, N, 3H)
        if beta is not None:
            gate_inputs = gate_inputs + beta_gates[:, None, :]

        def step(h, gate_input):
            h = self._gru_step(h, gate_input)
            return h, self._logit(h, beta)

        _, logits = jax.lax.scan(step, h0, jnp.swapaxes(gate_inputs, 0, 1))
        return jnp.swapaxes(logits, 0, 1) + site_logits

    def log_prob(self, s: jax.Array, beta=None) -> jax.Array:
        """Exact ``log q(s)`` of spins ``(B, L, L)``; float32, shape ``(B,)``."""
        logits = self.logits(s, beta)
        signs = s.reshape(s.shape[0], -1).astype(jnp.float32)
        return jnp.sum(jax.nn.log_sigmoid(signs * logits), axis=-1)

    def sample(self, n: int, *, key: jax.Array, beta=None) -> jax.Array:
        """Draw ``n`` exact ancestral samples; int8 spins of shape ``(n, L, L)``.

        ``beta`` (scalar or ``(n,)``) is required for a conditioned network.
        """
        beta = self._check_beta(beta, n)
        neighbours, mask = _visited_neighbours(self.L)
        site_gates, site_logits = self._position_terms()
        n_sites = self.L * self.L
        uniforms = jax.random.uniform(key, (n_sites, n))
        h0, beta_gates = self._initial(n, beta)
        flat0 = jnp.zeros((n, n_sites), jnp.float32)

        def step(carry, xs):
            h, flat = carry
            k, site_neighbours, site_mask, site_gate, out_bias, u = xs
            inputs = flat[:, site_neighbours] * site_mask  # (n, 4)
            gate_input = self._neighbour_inputs(inputs, beta) + site_gate + beta_gates
            h = self._gru_step(h, gate_input)
            p_up = jax.nn.sigmoid(self._logit(h, beta) + out_bias)
            spin = jnp.where(u < p_up, 1.0, -1.0)
            flat = flat.at[:, k].set(spin)
            return (h, flat), None

        xs = (
            jnp.arange(n_sites),
            jnp.asarray(neighbours),
            jnp.asarray(mask),
            site_gates,
            site_logits,
            uniforms,
        )
        (_, flat), _ = jax.lax.scan(step, (h0, flat0), xs)
        return flat.reshape(n, self.L, self.L).astype(jnp.int8)


class FixedTemperatureGRU(eqx.Module):
    """A temperature-conditioned :class:`AutoregressiveGRU` at one fixed ``beta``.

    It has the methods of an unconditioned network (``logits``, ``log_prob``,
    ``sample``, ``L``), so :class:`AutoregressiveSpins`, the variational
    estimates and the neural samplers take it unchanged. ``beta`` is static,
    so each temperature compiles its own functions.
    """

    net: AutoregressiveGRU
    beta: float = eqx.field(static=True)

    @property
    def L(self) -> int:
        return self.net.L

    @property
    def hidden_size(self) -> int:
        return self.net.hidden_size

    @property
    def temperature(self) -> float:
        return 1.0 / self.beta

    def logits(self, s: jax.Array) -> jax.Array:
        """Logits ``(B, N)`` of ``q(s_k = +1 | s_<k, beta)``."""
        return self.net.logits(s, self.beta)

    def log_prob(self, s: jax.Array) -> jax.Array:
        """Exact ``log q(s | beta)`` of spins ``(B, L, L)``; shape ``(B,)``."""
        return self.net.log_prob(s, self.beta)

    def sample(self, n: int, *, key: jax.Array) -> jax.Array:
        """Draw ``n`` exact samples at ``beta``; int8 ``(n, L, L)``."""
        return self.net.sample(n, key=key, beta=self.beta)


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
