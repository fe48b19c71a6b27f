"""Predict observables at other temperatures and sizes from a learned energy.

Markov chain Monte Carlo runs on ``exp(-E(s) / T)`` with the tile-aware local
kernel, for every temperature at once (chains of all temperatures are one
vectorised batch), or with replica exchange along a temperature ladder for
glassy energies. Observables per spin, with error bars:

* ``e``: mean learned energy per spin, error from ArviZ's MCSE;
* ``abs_m``: mean of the order parameter's modulus ``|m|``, error from ArviZ's
  MCSE. Which order parameter depends on the model (:data:`ORDER_PARAMETERS`):
  the magnetization for spins, ``(q max_a n_a / N - 1) / (q - 1)`` for Potts
  states, the clock magnetization ``|sum_k exp(2 pi i s_k / q)| / N``, or the
  overlap ``q_ab = sum_i s_i^a s_i^b / N`` of two independent chains at the
  same temperature for a spin glass;
* ``c = N (<e^2> - <e>^2) / T^2`` and ``chi = N (<m^2> - <|m|>^2) / T``,
  errors by jackknife over independent chains.

``rhat_max`` and ``ess_min`` are the worst R-hat and the smallest bulk or tail
ESS of the ``e`` and ``|m|`` traces.

The chains are split over the devices of
:func:`dcl_prob.sharding.current_mesh`. Each device runs its share of the
chains, and the results do not depend on the number of devices.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcl_prob import sharding
from dcl_prob.diagnostics import chain_jackknife, summarize_traces
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.samplers import tile_local
from dcl_prob.samplers.replica_exchange import build_kernel as build_exchange_kernel
from dcl_prob.samplers.replica_exchange import init as init_exchange
from dcl_prob.training import progress_enabled

__all__ = [
    "ORDER_PARAMETERS",
    "check_temperatures",
    "exchange_ladder",
    "observables_from_traces",
    "order_parameter_for_model",
    "run_chains",
    "run_tile_chains",
    "transfer",
]

logger = logging.getLogger(__name__)

#: Order parameters that :func:`transfer` reports as ``abs_m``, by name.
ORDER_PARAMETERS = {
    "magnetization": "m = sum_i s_i / N (spins -1/+1)",
    "potts": "(q max_a n_a / N - 1) / (q - 1), n_a sites in state a",
    "clock": "|sum_k exp(2 pi i s_k / q)| / N",
    "overlap": "q_ab = sum_i s_i^a s_i^b / N of two independent chains",
}

_MODEL_ORDER_PARAMETERS = {
    "ising": "magnetization",
    "ising-nnn": "magnetization",
    "potts": "potts",
    "clock": "clock",
    "spin-glass": "overlap",
}


def order_parameter_for_model(model: str | None, n_states: int = 2) -> str:
    """Return the name in :data:`ORDER_PARAMETERS` for a data set's ``model``.

    An unknown or missing model gets the magnetization for spins and the Potts
    order parameter for ``q > 2`` states.

    Args:
        model: the ``model`` attribute of a data set, such as ``"ising"``,
            ``"ising-nnn"``, ``"potts"``, ``"clock"`` or ``"spin-glass"``, or
            None.
        n_states: states per site: 2 for spins -1/+1, ``q`` for states
            ``0 .. q-1``. It decides only for an unknown or missing model.

    Returns:
        ``"magnetization"`` (Ising and Ising-NNN), ``"potts"``, ``"clock"`` or
        ``"overlap"`` (spin glass).
    """
    if model in _MODEL_ORDER_PARAMETERS:
        return _MODEL_ORDER_PARAMETERS[model]
    return "magnetization" if n_states == 2 else "potts"


def check_temperatures(temperatures) -> np.ndarray:
    """Return temperatures as a float array; raise if any is not finite and > 0.

    Args:
        temperatures: a number or an array-like of temperatures in units of
            J/k_B (``k_B = 1``).

    Returns:
        float64 array of the same values, at least one-dimensional: a single
        number gives shape ``(1,)``.

    Raises:
        ValueError: if there are no temperatures, or one is not finite and
            positive.
    """
    values = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no temperatures given; pass at least one, e.g. --T 2.0")
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
        raise ValueError(
            f"temperatures {bad.tolist()} are invalid: each must be finite and > 0"
        )
    return values


def ordered_start(
    key: jax.Array, n_chains: int, L: int, n_states: int = 2
) -> jax.Array:
    """Return uniform lattices ``(n_chains, L, L)`` int8, one random value per chain.

    For spins each chain is all up or all down; for ``n_states > 2`` every
    site of a chain has the same state, drawn from ``0 .. n_states - 1``. An
    ordered start avoids the long-lived domain-wall (stripe) states that a
    random start falls into below ``T_c``. Above ``T_c`` the burn-in removes
    its effect.

    Args:
        key: JAX PRNG key.
        n_chains: number of lattices.
        L: linear lattice size.
        n_states: states per site: 2 for spins -1/+1, ``q > 2`` for states
            ``0 .. q-1``.

    Returns:
        int8 :class:`jax.Array` ``(n_chains, L, L)``.
    """
    if n_states == 2:
        values = jnp.where(jax.random.bernoulli(key, 0.5, (n_chains, 1, 1)), 1, -1)
    else:
        values = jax.random.randint(key, (n_chains, 1, 1), 0, n_states)
    return jnp.broadcast_to(values, (n_chains, L, L)).astype(jnp.int8)


def random_start(key: jax.Array, n_chains: int, L: int, n_states: int = 2):
    """Return independent uniformly random lattices ``(n_chains, L, L)`` int8.

    Args:
        key: JAX PRNG key.
        n_chains: number of lattices.
        L: linear lattice size.
        n_states: states per site: 2 for spins -1/+1, ``q > 2`` for states
            ``0 .. q-1``.

    Returns:
        int8 :class:`jax.Array` ``(n_chains, L, L)`` in which every site is
        drawn independently and uniformly from the ``n_states`` values.
    """
    values = jax.random.randint(key, (n_chains, L, L), 0, n_states)
    if n_states == 2:
        values = 2 * values - 1
    return values.astype(jnp.int8)


def exchange_ladder(temperatures: np.ndarray, n_sites: int) -> np.ndarray:
    """Return a replica exchange ladder that contains every requested temperature.

    A geometric grid from ``min(T)`` to ``max(max(T), 2 min(T))`` with about
    ``sqrt(N)`` temperatures per e-fold, the spacing at which neighbouring
    energy distributions overlap when the heat capacity per spin is of order
    one, merged with the requested temperatures. Grid points closer than
    ``0.2 / sqrt(N)`` in ``log T`` to a requested temperature are dropped.

    Args:
        temperatures: 1-D float array of the requested temperatures, in units
            of J/k_B, each finite and positive (as from
            :func:`check_temperatures`).
        n_sites: spins per configuration ``N = L * L``.

    Returns:
        float64 array ``(R,)`` of distinct temperatures in increasing order
        that contains every requested temperature.
    """
    low = float(np.min(temperatures))
    high = max(float(np.max(temperatures)), 2.0 * low)
    n_grid = int(np.ceil(np.log(high / low) * np.sqrt(n_sites))) + 1
    grid = np.geomspace(low, high, n_grid)
    gap = np.min(np.abs(np.log(grid[:, None] / temperatures[None, :])), axis=1)
    grid = grid[gap > 0.2 / np.sqrt(n_sites)]  # drop near-duplicates of a request
    return np.unique(np.concatenate([grid, temperatures]))


def run_chains(
    kernel: Callable,
    states,
    betas: jax.Array,
    observe: Callable,
    *,
    key: jax.Array,
    n_sweeps: int,
    burn_in: int,
    chunk_size: int = 100,
    description: str = "sampling",
    progress: bool = True,
) -> tuple[dict, object]:
    """Run vectorised chains and record observables after every sweep.

    The chain axis is split over the devices of
    :func:`dcl_prob.sharding.current_mesh`. When the device count does not
    divide ``n_chains``, copies of the first chains (same start, key and
    beta) fill the last devices and are left out of ``observe`` and of the
    results, so the traces are the same on any number of devices.

    Args:
        kernel: ``kernel(key, state, beta) -> (state, info)`` for one chain,
            where ``info`` has an ``acceptance_rate`` field.
        states: pytree of initial states with a leading chain axis of size
            ``n_chains``.
        betas: inverse temperature ``1 / T`` of every chain, shape
            ``(n_chains,)``, with ``T`` in units of J/k_B.
        observe: ``observe(states) -> dict`` of arrays, called on the
            batched states of the ``n_chains`` chains. An array with one
            scalar per chain gives a trace ``(n_chains, n_draws)``.
        key: JAX PRNG key.
        n_sweeps: recorded sweeps per chain, rounded up to whole chunks and
            at least one chunk.
        burn_in: discarded sweeps per chain (rounded up to whole chunks).
        chunk_size: sweeps per compiled chunk.
        description: label of the progress bar.
        progress: show a progress bar (never under ``CI``).

    Returns:
        ``(traces, states)``. ``traces`` maps each name of ``observe``, and
        ``acceptance_rate``, to a NumPy array: ``(n_chains, n_draws)`` for one
        scalar per chain, and in general the transpose of
        ``(n_draws, *value_shape)``, with ``n_draws`` the recorded sweeps.
        ``states`` are the final states of the ``n_chains`` chains,
        replicated on every device.
    """
    n_chains = betas.shape[0]
    mesh = sharding.current_mesh()
    copies = np.arange(sharding.padded_size(n_chains, mesh)) % n_chains
    states, betas = sharding.shard_rows(
        jax.tree.map(lambda leaf: np.asarray(leaf)[copies], (states, betas)), mesh
    )
    everywhere = sharding.replicated(mesh)

    def real_chains(tree):
        return jax.tree.map(lambda leaf: leaf[:n_chains], tree)

    @functools.partial(jax.jit, out_shardings=(sharding.row_sharding(mesh), everywhere))
    def run_chunk(states, betas, key):
        def sweep(states, key):
            keys = jax.random.split(key, n_chains)[copies]
            keys = sharding.constrain_rows(keys, mesh)
            states, info = jax.vmap(kernel)(keys, states, betas)
            record = observe(real_chains(states))
            record["acceptance_rate"] = real_chains(info.acceptance_rate)
            return states, record

        return jax.lax.scan(sweep, states, jax.random.split(key, chunk_size))

    n_burn = -(-burn_in // chunk_size)
    n_record = max(1, -(-n_sweeps // chunk_size))
    records = []
    bar = tqdm(
        total=(n_burn + n_record) * chunk_size,
        desc=description,
        disable=not progress_enabled(progress),
        leave=False,
    )
    try:
        for chunk, chunk_key in enumerate(jax.random.split(key, n_burn + n_record)):
            states, record = run_chunk(states, betas, chunk_key)
            if chunk >= n_burn:
                records.append(jax.device_get(record))
            bar.update(chunk_size)
    finally:
        bar.close()
    traces = {
        name: np.concatenate([r[name] for r in records], axis=0).T
        for name in records[0]
    }
    return traces, jax.jit(real_chains, out_shardings=everywhere)(states)


def observables_from_traces(energy: np.ndarray, m: np.ndarray, T: float, n_sites: int):
    """Observables per spin with errors from traces ``(chain, draw)``.

    Args:
        energy: energy per spin, shape ``(chain, draw)``.
        m: order parameter per spin, shape ``(chain, draw)`` with the draws
            of ``energy`` (the overlap may have fewer chains).
        T: temperature in units of J/k_B (``k_B = 1``).
        n_sites: spins per configuration ``N``.

    Returns:
        Floats ``{"e", "e_err", "abs_m", "abs_m_err", "c", "c_err", "chi",
        "chi_err", "rhat_max", "ess_min"}``: the means of ``energy`` and
        ``|m|`` with their ArviZ MCSE, the heat capacity per spin
        ``N var(e) / T**2`` and the susceptibility per spin
        ``N (<m**2> - <|m|>**2) / T`` with jackknife errors over chains, the
        largest R-hat and the smallest bulk or tail ESS of the two traces.
    """
    abs_m = np.abs(m)
    # Separate summaries: the overlap has half as many traces as the energy.
    summary = summarize_traces({"e": energy}) | summarize_traces({"abs_m": abs_m})

    def heat_capacity(e):
        return n_sites * np.var(e) / T**2

    def susceptibility(m2, am):
        return n_sites * (np.mean(m2) - np.mean(am) ** 2) / T

    c, c_err = chain_jackknife(heat_capacity, energy)
    chi, chi_err = chain_jackknife(susceptibility, m**2, abs_m)
    rhats = [summary[k]["rhat"] for k in summary]
    ess = [summary[k][kind] for k in summary for kind in ("ess_bulk", "ess_tail")]
    return {
        "e": summary["e"]["mean"],
        "e_err": summary["e"]["mcse"],
        "abs_m": summary["abs_m"]["mean"],
        "abs_m_err": summary["abs_m"]["mcse"],
        "c": c,
        "c_err": c_err,
        "chi": chi,
        "chi_err": chi_err,
        "rhat_max": float(np.max(rhats)),
        "ess_min": float(np.min(ess)),
    }


def _observe_fn(order_parameter: str, n_states: int, n_sites: int):
    """Build ``observe(spins, energy)`` for spins ``(C, L, L)`` and energies ``(C,)``.

    Returns ``{"e": (C,), "m": (C,)}`` per spin, or ``"m"`` of shape
    ``(C / 2,)`` for the overlap of chains ``2j`` and ``2j + 1``.
    """
    if order_parameter not in ORDER_PARAMETERS:
        raise ValueError(
            f"order_parameter={order_parameter!r} is invalid: use one of "
            f"{sorted(ORDER_PARAMETERS)}"
        )
    if order_parameter in ("magnetization", "overlap") and n_states != 2:
        raise ValueError(
            f"order_parameter={order_parameter!r} needs spins -1/+1, but the "
            f"energy has n_states={n_states}; use 'potts' or 'clock'"
        )

    def observe(spins, energy):
        values = spins.astype(jnp.float32)
        if order_parameter == "magnetization":
            m = jnp.mean(values, axis=(-2, -1))
        elif order_parameter == "overlap":
            pairs = values.reshape(-1, 2, *values.shape[1:])
            m = jnp.mean(pairs[:, 0] * pairs[:, 1], axis=(-2, -1))
        elif order_parameter == "potts":
            one_hot = jax.nn.one_hot(spins, n_states, dtype=jnp.float32)
            largest = jnp.max(jnp.mean(one_hot, axis=(-3, -2)), axis=-1)
            m = (n_states * largest - 1.0) / (n_states - 1.0)
        else:
            angle = (2.0 * np.pi / n_states) * values
            m = jnp.hypot(
                jnp.mean(jnp.cos(angle), axis=(-2, -1)),
                jnp.mean(jnp.sin(angle), axis=(-2, -1)),
            )
        return {"e": energy / n_sites, "m": m}

    return observe


def run_tile_chains(
    energy: ExtensiveEnergy,
    L: int,
    temperatures: np.ndarray,
    *,
    key: jax.Array,
    n_chains: int,
    n_sweeps: int,
    burn_in: int,
    description: str,
    order_parameter: str = "magnetization",
    exchange: bool = False,
    progress: bool = True,
) -> dict:
    """Run tile-local Metropolis at every temperature at once.

    Chains start ordered (:func:`ordered_start`), except for the overlap,
    whose pairs of chains start from independent random lattices. With
    ``exchange`` every chain is a replica exchange ladder
    (:func:`exchange_ladder`) and one sweep is one local sweep of every
    replica followed by one round of swaps.

    Args:
        energy: the learned extensive energy.
        L: linear lattice size, which the energy's tiles fit.
        temperatures: 1-D float array of temperatures in units of J/k_B, as
            from :func:`check_temperatures`.
        key: JAX PRNG key (keyword only).
        n_chains: chains per temperature, an even number for the overlap.
        n_sweeps: recorded sweeps per chain, rounded up to a multiple of 100
            (the chunk size of :func:`run_chains`), and at least 100.
        burn_in: discarded sweeps per chain, rounded up in the same way.
        description: label of the progress bar.
        order_parameter: a key of :data:`ORDER_PARAMETERS`.
        exchange: run replica exchange over :func:`exchange_ladder`.
        progress: show a progress bar (never under ``CI``).

    Returns:
        ``{"e", "m", "acceptance_rate"}`` traces of shape
        ``(temperatures.size * n_chains, draws)``; chains ``k * n_chains`` to
        ``(k + 1) * n_chains - 1`` run at ``temperatures[k]``. ``e`` is the
        energy per spin and ``m`` the order parameter. For the overlap ``m``
        has ``n_chains / 2`` traces per temperature, one per pair of chains.
        ``acceptance_rate`` is that of the local moves, at the requested
        temperatures also with ``exchange``. All are NumPy arrays.

    Raises:
        ValueError: if ``order_parameter`` is unknown, or is the
            magnetization or the overlap for an energy of ``q > 2`` states.
    """
    local_kernel = tile_local.build_kernel(energy, L)
    observe_spins = _observe_fn(order_parameter, energy.n_states, L * L)
    key_init, key_run = jax.random.split(key)
    n_temperatures = temperatures.size
    start = random_start if order_parameter == "overlap" else ordered_start

    def init_chain(spins):
        return tile_local.init(spins, energy)

    if not exchange:
        spins = start(key_init, n_chains * n_temperatures, L, energy.n_states)
        states = jax.jit(jax.vmap(init_chain))(spins)
        betas = jnp.asarray(np.repeat(1.0 / temperatures, n_chains), jnp.float32)
        kernel = local_kernel

        def observe(states):
            return observe_spins(states.spins, states.energy)

    else:
        ladder = exchange_ladder(temperatures, L * L)
        positions = jnp.asarray(np.searchsorted(ladder, temperatures))
        exchange_step = build_exchange_kernel(
            lambda k, state, T: local_kernel(k, state, 1.0 / T),
            lambda state: state.energy,
        )
        ladder_array = jnp.asarray(ladder, jnp.float32)
        spins = start(key_init, n_chains * ladder.size, L, energy.n_states)
        spins = spins.reshape(n_chains, ladder.size, L, L)
        states = jax.jit(jax.vmap(lambda s: init_exchange(s, init_chain)))(spins)
        betas = jnp.zeros(n_chains, jnp.float32)  # the ladder fixes the betas

        def kernel(k, state, beta):
            del beta
            state, info = exchange_step(k, state, ladder_array)
            return state, tile_local.TileLocalInfo(info.local_info.acceptance_rate)

        def observe(states):
            def requested(leaf):  # (n_chains, R, ...) -> (n_T * n_chains, ...)
                leaf = jnp.swapaxes(leaf[:, positions], 0, 1)
                return leaf.reshape(-1, *leaf.shape[2:])

            return observe_spins(
                requested(states.replicas.spins), requested(states.replicas.energy)
            )

    traces, _ = run_chains(
        kernel,
        states,
        betas,
        observe,
        key=key_run,
        n_sweeps=n_sweeps,
        burn_in=burn_in,
        description=description,
        progress=progress,
    )
    if exchange:  # (R, chain, draw) -> acceptance at the requested temperatures
        rates = traces["acceptance_rate"][np.asarray(positions)]
        traces["acceptance_rate"] = rates.reshape(n_temperatures * n_chains, -1)
    return traces


def transfer(
    energy: ExtensiveEnergy,
    temperatures: Sequence[float],
    L: int,
    *,
    key: jax.Array,
    n_chains: int = 32,
    n_sweeps: int = 2000,
    burn_in: int = 500,
    order_parameter: str | None = None,
    exchange: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Sample ``exp(-E / T)`` on an ``L x L`` lattice at each temperature.

    Args:
        energy: the learned extensive energy.
        temperatures: target temperatures (k_B = 1).
        L: lattice size, a multiple of the energy network's focus (for an
            energy with per-bond couplings, its training size).
        key: PRNG key (keyword only).
        n_chains: independent chains per temperature (an even number for the
            overlap, which pairs them).
        n_sweeps: recorded sweeps per chain, rounded up to a multiple of 100,
            and at least 100.
        burn_in: discarded sweeps per chain, rounded up to a multiple of 100.
        order_parameter: a key of :data:`ORDER_PARAMETERS`; default
            ``"magnetization"`` for spins and ``"potts"`` for ``q > 2``
            states. :func:`order_parameter_for_model` picks it from a data
            set's model name.
        exchange: run every chain as a replica exchange ladder over
            :func:`exchange_ladder`, for energies with slow local dynamics at
            low temperature, such as spin glasses.
        progress: show a progress bar.

    Returns:
        One row per temperature with ``L``, ``T``, the observables of
        :func:`observables_from_traces` (``abs_m`` holds the order
        parameter, named in the row's ``order_parameter``), the acceptance
        rate of the local moves and, with ``exchange``, the ladder size.

    Raises:
        ValueError: for invalid temperatures, fewer than 2 chains, an overlap
            with an odd number of chains or fewer than 4, an ``L`` that is
            not a multiple of the focus or differs from the size of per-bond
            couplings, or an order parameter that is unknown or needs spins
            -1/+1 for an energy of ``q > 2`` states.
    """
    temperatures = check_temperatures(temperatures)
    if order_parameter is None:
        order_parameter = order_parameter_for_model(None, energy.n_states)
    minimum = 4 if order_parameter == "overlap" else 2
    if n_chains < minimum or (order_parameter == "overlap" and n_chains % 2):
        raise ValueError(
            f"n_chains={n_chains} is invalid: R-hat needs at least 2 chains"
            + (
                ", and the overlap pairs them, so pass an even number >= 4"
                if order_parameter == "overlap"
                else ""
            )
        )
    energy.geometry(L)  # raises a clear error if L does not fit the tiles
    n_sites = L * L
    traces = run_tile_chains(
        energy,
        L,
        temperatures,
        key=key,
        n_chains=n_chains,
        n_sweeps=n_sweeps,
        burn_in=burn_in,
        description=f"transfer L={L}",
        order_parameter=order_parameter,
        exchange=exchange,
        progress=progress,
    )
    per_m = n_chains // 2 if order_parameter == "overlap" else n_chains
    rows = []
    for k, T in enumerate(temperatures):
        chains = slice(k * n_chains, (k + 1) * n_chains)
        m_chains = slice(k * per_m, (k + 1) * per_m)
        row = {"L": int(L), "T": float(T), "order_parameter": order_parameter}
        row.update(
            observables_from_traces(
                traces["e"][chains], traces["m"][m_chains], T, n_sites
            )
        )
        row["acceptance_rate"] = float(np.mean(traces["acceptance_rate"][chains]))
        if exchange:
            row["exchange_ladder_size"] = int(
                exchange_ladder(temperatures, n_sites).size
            )
        rows.append(row)
        logger.info("transfer L=%d T=%.4g: %s", L, T, row)
    return rows
