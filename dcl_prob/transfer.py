"""Predict observables at other temperatures and sizes from a learned energy.

Markov chain Monte Carlo runs on ``exp(-E(s) / T)`` with the tile-aware local
kernel, for every temperature at once (chains of all temperatures are one
vectorised batch). Observables per spin, with error bars:

* ``e``: mean learned energy per spin, error from ArviZ's MCSE;
* ``abs_m``: mean ``|m|``, error from ArviZ's MCSE;
* ``c = N (<e^2> - <e>^2) / T^2`` and ``chi = N (<m^2> - <|m|>^2) / T``,
  errors by jackknife over independent chains.

``rhat_max`` and ``ess_min`` are the worst R-hat and the smallest bulk or tail
ESS of the ``e`` and ``|m|`` traces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcl_prob.diagnostics import chain_jackknife, summarize_traces
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.samplers import tile_local
from dcl_prob.training import progress_enabled

__all__ = [
    "check_temperatures",
    "observables_from_traces",
    "run_chains",
    "run_tile_chains",
    "transfer",
]

logger = logging.getLogger(__name__)


def check_temperatures(temperatures) -> np.ndarray:
    """Return temperatures as a float array; raise if any is not finite and > 0."""
    values = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no temperatures given; pass at least one, e.g. --T 2.0")
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
        raise ValueError(
            f"temperatures {bad.tolist()} are invalid: each must be finite and > 0"
        )
    return values


def ordered_start(key: jax.Array, n_chains: int, L: int) -> jax.Array:
    """All-up or all-down lattices (sign drawn at random), ``(n_chains, L, L)`` int8.

    An ordered start avoids the long-lived domain-wall (stripe) states that a
    random start falls into below ``T_c``. Above ``T_c`` the burn-in removes
    its effect.
    """
    signs = jnp.where(jax.random.bernoulli(key, 0.5, (n_chains, 1, 1)), 1, -1)
    return jnp.broadcast_to(signs, (n_chains, L, L)).astype(jnp.int8)


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
) -> dict:
    """Run vectorised chains and record observables after every sweep.

    Args:
        kernel: ``kernel(key, state, beta) -> (state, info)`` for one chain,
            where ``info`` has an ``acceptance_rate`` field.
        states: initial states with a leading chain axis.
        betas: inverse temperature of every chain, shape ``(n_chains,)``.
        observe: ``observe(state) -> dict`` of per-chain scalars.
        key: PRNG key.
        n_sweeps: recorded sweeps per chain (rounded up to whole chunks).
        burn_in: discarded sweeps per chain (rounded up to whole chunks).
        chunk_size: sweeps per compiled chunk.

    Returns:
        ``(traces, states)``: ``{name: array (n_chains, n_draws)}`` including
        ``acceptance_rate``, and the final states.
    """
    n_chains = betas.shape[0]

    @jax.jit
    def run_chunk(states, key):
        def sweep(states, key):
            keys = jax.random.split(key, n_chains)
            states, info = jax.vmap(kernel)(keys, states, betas)
            record = observe(states)
            record["acceptance_rate"] = info.acceptance_rate
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
            states, record = run_chunk(states, chunk_key)
            if chunk >= n_burn:
                records.append(jax.device_get(record))
            bar.update(chunk_size)
    finally:
        bar.close()
    traces = {
        name: np.concatenate([r[name] for r in records], axis=0).T
        for name in records[0]
    }
    return traces, states


def observables_from_traces(energy: np.ndarray, m: np.ndarray, T: float, n_sites: int):
    """Observables per spin with errors from traces ``(chain, draw)``.

    Args:
        energy: energy per spin.
        m: magnetization per spin.
        T: temperature.
        n_sites: spins per configuration ``N``.
    """
    abs_m = np.abs(m)
    summary = summarize_traces({"e": energy, "abs_m": abs_m})

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
    progress: bool = True,
) -> dict:
    """Run tile-local Metropolis from ordered starts at every temperature at once.

    Returns:
        ``{"e", "m", "acceptance_rate"}`` traces of shape
        ``(temperatures.size * n_chains, draws)``; chains ``k * n_chains`` to
        ``(k + 1) * n_chains - 1`` run at ``temperatures[k]``. ``e`` and ``m``
        are per spin.
    """
    kernel = tile_local.build_kernel(energy, L)
    key_init, key_run = jax.random.split(key)
    spins = ordered_start(key_init, n_chains * temperatures.size, L)
    states = jax.jit(jax.vmap(lambda s: tile_local.init(s, energy)))(spins)
    betas = jnp.asarray(np.repeat(1.0 / temperatures, n_chains), jnp.float32)

    def observe(states):
        m = jnp.mean(states.spins.astype(jnp.float32), axis=(-2, -1))
        return {"e": states.energy / (L * L), "m": m}

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
    progress: bool = True,
) -> list[dict]:
    """Sample ``exp(-E / T)`` on an ``L x L`` lattice at each temperature.

    Args:
        energy: the learned extensive energy.
        temperatures: target temperatures (k_B = 1).
        L: lattice size, a multiple of the energy network's focus.
        key: PRNG key (keyword only).
        n_chains: independent chains per temperature, started ordered.
        n_sweeps: recorded sweeps per chain.
        burn_in: discarded sweeps per chain.
        progress: show a progress bar.

    Returns:
        One row per temperature with ``L``, ``T`` and the observables of
        :func:`observables_from_traces`, plus the acceptance rate.
    """
    temperatures = check_temperatures(temperatures)
    if n_chains < 2:
        raise ValueError(f"n_chains={n_chains} is invalid: R-hat needs at least 2")
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
        progress=progress,
    )
    rows = []
    for k, T in enumerate(temperatures):
        chains = slice(k * n_chains, (k + 1) * n_chains)
        row = {"L": int(L), "T": float(T)}
        row.update(
            observables_from_traces(
                traces["e"][chains], traces["m"][chains], T, n_sites
            )
        )
        row["acceptance_rate"] = float(np.mean(traces["acceptance_rate"][chains]))
        rows.append(row)
        logger.info("transfer L=%d T=%.4g: %s", L, T, row)
    return rows
