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

import itertools
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
    """Return position features ``(N, 9)`` whose meaning does not depend on ``L``.

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
    """Return the features ``(B, 2)`` of inverse temperatures ``(B,)``."""
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

    With ``n_states = q > 2`` the sites hold Potts or clock states
    ``0 .. q-1`` instead of spins +-1: neighbour inputs are one-hot vectors
    of length ``q`` and each conditional is a categorical distribution over
    ``q`` values (a softmax of ``q`` logits).

    Args:
        L: linear lattice size.
        hidden_size: GRU hidden units ``H``.
        key: PRNG key for the initial weights.
        position_encoding: ``"site"`` or ``"boundary"``.
        conditioned: take ``beta`` as an input.
        n_states: states per site, 2 for Ising spins +-1, ``q`` for
            states ``0 .. q-1``.
    """

    input_weight: jax.Array  # (4 d [x 2 if conditioned], 3 H), neighbour inputs
    site_bias: jax.Array  # (N or 9, 3 H) float32, position -> gate input
    hidden_weight: jax.Array  # (H, 3 H) float32, recurrent weights
    hidden_bias: jax.Array  # (H,) float32, recurrent bias of the candidate gate
    initial_hidden: jax.Array  # (H,) float32
    output_weight: jax.Array  # (H,) logit of s_k = +1, or (H, q) logits of states
    site_output_bias: jax.Array  # (N or 9,) or (N or 9, q), position -> logits
    beta_weight: jax.Array | None  # (2, 3 H) float32, (beta, beta^2) -> gates
    beta_output_weight: jax.Array | None  # like output_weight, beta * hidden
    L: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    position_encoding: str = eqx.field(static=True)
    conditioned: bool = eqx.field(static=True)
    n_states: int = eqx.field(static=True)

    def __init__(
        self,
        L: int,
        hidden_size: int = 64,
        *,
        key: jax.Array,
        position_encoding: str = "site",
        conditioned: bool = False,
        n_states: int = 2,
    ):
        L = check_lattice_size(L)
        if not (isinstance(n_states, int | np.integer) and n_states >= 2):
            raise ValueError(
                f"n_states={n_states!r} is invalid: pass 2 for Ising spins or the "
                "number q >= 3 of Potts states"
            )
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
        n_states = int(n_states)
        width = 1 if n_states == 2 else n_states
        out_shape = () if n_states == 2 else (n_states,)
        n_inputs = _N_NEIGHBOURS * width * (2 if conditioned else 1)
        keys = jax.random.split(key, 4)
        scale_in = 1.0 / math.sqrt(_N_NEIGHBOURS)
        scale_hidden = 1.0 / math.sqrt(hidden_size)
        self.L = L
        self.hidden_size = hidden_size
        self.position_encoding = position_encoding
        self.conditioned = bool(conditioned)
        self.n_states = n_states
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
            0.1 * scale_hidden * jax.random.normal(keys[2], (hidden_size, *out_shape))
        )
        self.site_output_bias = jnp.zeros((n_positions, *out_shape))
        if conditioned:
            self.beta_weight = jnp.zeros((_N_BETA_FEATURES, 3 * hidden_size))
            self.beta_output_weight = (
                0.1
                * scale_hidden
                * jax.random.normal(keys[3], (hidden_size, *out_shape))
            )
        else:
            self.beta_weight = None
            self.beta_output_weight = None

    def resized(self, L: int) -> AutoregressiveGRU:
        """Return this network on an ``L x L`` lattice, with the same parameters.

        Only a network with ``position_encoding="boundary"`` has parameters
        that do not depend on the lattice size.

        Args:
            L: the new linear lattice size, >= 2.

        Returns:
            The same network for ``(L, L)`` configurations (itself if ``L`` is
            unchanged).

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
            n_states=self.n_states,
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

        Args:
            key: PRNG key (keyword only), unused.

        Returns:
            A network with ``conditioned=True`` whose ``log_prob(s, beta)``
            equals this network's ``log_prob(s)`` at every ``beta``.

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
            n_states=self.n_states,
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

        Args:
            temperature: ``T`` in units of J/k_B, finite and > 0.

        Returns:
            A :class:`FixedTemperatureGRU` with ``beta = 1 / T``.

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

    def _neighbour_inputs(
        self, values: jax.Array, mask: jax.Array, beta: jax.Array | None
    ) -> jax.Array:
        """Gate pre-activations ``(..., 3 H)`` from the neighbour values
        ``(..., 4)`` and their visited mask (1 where visited)."""
        if self.n_states == 2:
            x = values * mask
        else:
            one_hot = jax.nn.one_hot(values.astype(jnp.int32), self.n_states)
            x = (one_hot * mask[..., None]).reshape(values.shape[:-1] + (-1,))
        if beta is None:
            return x @ self.input_weight
        scaled = x * beta.reshape(beta.shape + (1,) * (x.ndim - 1))
        return jnp.concatenate([x, scaled], axis=-1) @ self.input_weight

    def _logit(self, h: jax.Array, beta: jax.Array | None) -> jax.Array:
        """Logits ``(B,)`` (two states) or ``(B, q)`` from hidden states ``(B, H)``."""
        logit = h @ self.output_weight
        if beta is not None:
            scale = beta if self.n_states == 2 else beta[:, None]
            logit = logit + scale * (h @ self.beta_output_weight)
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
            s: spins +-1 (or states ``0 .. q-1``) of shape ``(B, L, L)``.
            beta: inverse temperature, scalar or ``(B,)``; only for a
                conditioned network.

        Returns:
            float32 array of shape ``(B, N)`` with ``N = L * L``, or
            ``(B, N, q)`` (logits of every state) when ``n_states > 2``.
        """
        batch = s.shape[0]
        beta = self._check_beta(beta, batch)
        neighbours, mask = _visited_neighbours(self.L)
        site_gates, site_logits = self._position_terms()
        flat = s.reshape(batch, -1).astype(jnp.float32)
        h0, beta_gates = self._initial(batch, beta)
        gate_inputs = (
            self._neighbour_inputs(flat[:, neighbours], jnp.asarray(mask), beta)
            + site_gates
        )  # (B, N, 3H)
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
        if self.n_states == 2:
            signs = s.reshape(s.shape[0], -1).astype(jnp.float32)
            return jnp.sum(jax.nn.log_sigmoid(signs * logits), axis=-1)
        states = s.reshape(s.shape[0], -1, 1).astype(jnp.int32)
        log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), states, axis=-1)
        return jnp.sum(log_p[..., 0], axis=-1)

    def sample(self, n: int, *, key: jax.Array, beta=None) -> jax.Array:
        """Draw ``n`` exact ancestral samples; int8 of shape ``(n, L, L)``.

        Values are spins +-1, or states ``0 .. q-1`` when ``n_states > 2``.
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
            gate_input = (
                self._neighbour_inputs(flat[:, site_neighbours], site_mask, beta)
                + site_gate
                + beta_gates
            )
            h = self._gru_step(h, gate_input)
            logit = self._logit(h, beta) + out_bias
            if self.n_states == 2:
                spin = jnp.where(u < jax.nn.sigmoid(logit), 1.0, -1.0)
            else:
                # Inverse CDF: the state is the number of cumulative
                # probabilities below u.
                cdf = jnp.cumsum(jax.nn.softmax(logit), axis=-1)
                spin = jnp.sum(u[:, None] > cdf[:, :-1], axis=-1).astype(jnp.float32)
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
        """Linear lattice size of the wrapped network."""
        return self.net.L

    @property
    def hidden_size(self) -> int:
        """GRU hidden units of the wrapped network."""
        return self.net.hidden_size

    @property
    def n_states(self) -> int:
        """Number of values of a site: 2 for spins +-1, ``q`` for states."""
        return self.net.n_states

    @property
    def temperature(self) -> float:
        """The fixed temperature ``1 / beta`` (units of J/k_B)."""
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


_MAX_ENUMERATED_STATES = 2**16
_MAX_COLOUR_PERMUTATION_STATES = 5  # 5! = 120 permutations


def _colour_permutations(n_states: int) -> np.ndarray:
    """Return all permutations of ``0 .. q-1`` as rows, shape ``(q!, q)``."""
    return np.array(list(itertools.permutations(range(n_states))), np.int8)


class AutoregressiveSpins(dist.Distribution):
    """NumPyro distribution over lattice configurations given by an autoregressive net.

    The event shape is the lattice shape ``(L, L)`` and the batch shape is
    ``()``. Samples are int8 spins +-1, or Potts states ``0 .. q-1`` for a
    network with ``n_states = q > 2``. With ``z2=True`` (two states) the
    distribution is symmetrised under a global spin flip,
    ``q_z2(s) = (q(s) + q(-s)) / 2``, which stays normalized and is sampled
    by flipping a sample of ``q`` with probability 1/2. With
    ``colour_symmetric=True`` (``q > 2``) it is averaged in the same way over
    all ``q!`` permutations of the colours.

    Args:
        net: an :class:`AutoregressiveGRU`, or a conditioned one fixed with
            :meth:`AutoregressiveGRU.at_temperature`.
        z2: symmetrise under the global spin flip (two states only).
        colour_symmetric: symmetrise over colour permutations (``q > 2``,
            at most 5 colours).
        validate_args: check that values passed to :meth:`log_prob` are
            allowed states.
    """

    arg_constraints = {}
    has_enumerate_support = True
    # Samples are discrete, so no gradient flows through them. NumPyro's default
    # ``has_rsample`` (0.22) is True for a distribution without arg_constraints, which
    # would make ``TraceGraph_ELBO`` drop the score-function term of a guide site.
    has_rsample = False
    pytree_data_fields = ("net",)
    pytree_aux_fields = ("z2", "colour_symmetric")

    def __init__(
        self,
        net: AutoregressiveGRU,
        *,
        z2: bool = False,
        colour_symmetric: bool = False,
        validate_args=None,
    ):
        n_states = getattr(net, "n_states", 2)
        if z2 and n_states != 2:
            raise ValueError(
                f"z2=True needs two states, this network has {n_states}; use "
                "colour_symmetric=True for Potts states"
            )
        if colour_symmetric and not 2 < n_states <= _MAX_COLOUR_PERMUTATION_STATES:
            raise ValueError(
                f"colour_symmetric=True needs 3 to {_MAX_COLOUR_PERMUTATION_STATES} "
                f"states, this network has {n_states}; use z2=True for Ising spins"
            )
        self.net = net
        self.z2 = bool(z2)
        self.colour_symmetric = bool(colour_symmetric)
        super().__init__(
            batch_shape=(), event_shape=(net.L, net.L), validate_args=validate_args
        )

    @property
    def n_states(self) -> int:
        """Number of values of a site: 2 for spins +-1, ``q`` for states."""
        return getattr(self.net, "n_states", 2)

    @constraints.dependent_property(is_discrete=True, event_dim=2)
    def support(self):
        """NumPyro constraint of an ``(L, L)`` event: spins +-1, or the integers
        ``0 .. q-1`` for ``q`` states."""
        if self.n_states == 2:
            return constraints.independent(spin_support, 2)
        return constraints.independent(
            constraints.integer_interval(0, self.n_states - 1), 2
        )

    def sample(self, key, sample_shape=()):
        """Draw exact samples; int8 array of shape ``sample_shape + (L, L)``."""
        n = math.prod(sample_shape)
        key_sample, key_flip = jax.random.split(key)
        s = self.net.sample(n, key=key_sample)
        if self.z2:
            flip = jax.random.bernoulli(key_flip, 0.5, (n, 1, 1))
            s = jnp.where(flip, -s, s)
        if self.colour_symmetric:
            permutations = jnp.asarray(_colour_permutations(self.n_states))
            choice = jax.random.randint(key_flip, (n,), 0, len(permutations))
            s = jnp.take_along_axis(
                permutations[choice], s.reshape(n, -1).astype(jnp.int32), axis=1
            ).reshape(s.shape)
        return s.reshape(tuple(sample_shape) + self.event_shape)

    def log_prob(self, value):
        """Exact normalized ``log q`` of configurations of shape ``(..., L, L)``."""
        if self._validate_args:
            self._validate_sample(value)
        batch_shape = jnp.shape(value)[:-2]
        flat = jnp.reshape(value, (-1,) + self.event_shape)
        if self.colour_symmetric:
            permutations = _colour_permutations(self.n_states)
            states = flat.astype(jnp.int32)
            log_q = jnp.stack(
                [self.net.log_prob(jnp.asarray(row)[states]) for row in permutations]
            )
            log_q = jax.nn.logsumexp(log_q, axis=0) - math.log(len(permutations))
        else:
            log_q = self.net.log_prob(flat)
        if self.z2:
            log_q = jnp.logaddexp(log_q, self.net.log_prob(-flat)) - math.log(2.0)
        return log_q.reshape(batch_shape)

    def enumerate_support(self, expand=True):
        """Return every configuration of the lattice, for at most 2**16 of them.

        Returns int8 configurations of shape ``(q**N, L, L)``. For spins the
        order is binary: bit ``k`` of the row index is 1 where site ``k`` is
        -1. For ``q`` states, digit ``k`` of the row index in base ``q`` is
        the state of site ``k``.
        """
        n_sites = self.net.L**2
        q = self.n_states
        if q**n_sites > _MAX_ENUMERATED_STATES:
            raise ValueError(
                f"enumerate_support needs at most {_MAX_ENUMERATED_STATES} "
                "configurations (at most 16 sites of spins, 10 sites of 3 states), "
                f"got {q}**{n_sites} for L={self.net.L}; sample from the "
                "distribution instead"
            )
        index = np.arange(q**n_sites)[:, None]
        digits = (index // q ** np.arange(n_sites)) % q
        values = 1 - 2 * digits if q == 2 else digits
        configs = values.astype(np.int8).reshape(-1, self.net.L, self.net.L)
        return jnp.asarray(configs)

    def _validate_sample(self, value):
        mask = self.support(value)
        if isinstance(mask, jax.core.Tracer):
            return mask  # values are unknown while tracing under jit
        if not bool(jnp.all(mask)):
            values = np.asarray(value)
            allowed = np.asarray(self.support.base_constraint(values))
            bad = np.unique(values[~allowed])
            if self.n_states == 2:
                raise ValueError(
                    f"AutoregressiveSpins.log_prob expects Ising spins -1/+1, got "
                    f"values {bad[:5].tolist()}; map 0/1 data with s = 2 * x - 1"
                )
            top = self.n_states - 1
            raise ValueError(
                f"AutoregressiveSpins.log_prob expects Potts states 0..{top}, got "
                f"values {bad[:5].tolist()}; store states as integers from 0"
            )
        return mask
