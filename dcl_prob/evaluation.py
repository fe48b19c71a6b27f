"""Score learned models against exact results and the true Hamiltonian.

Everything here uses the true Hamiltonian or exact solutions, so it is for
evaluation only: nothing computed here is fed back into training.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob import exact
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.samplers import checkerboard
from dcl_prob.transfer import (
    check_temperatures,
    observables_from_traces,
    ordered_start,
    run_chains,
)

__all__ = [
    "effective_coupling",
    "kaufman_reference",
    "reference_monte_carlo",
]

REFERENCE_SAMPLER = "checkerboard Metropolis on the true Hamiltonian, ordered start"


def kaufman_reference(L: int, T: float, J: float = 1.0) -> dict:
    """Exact energy, heat capacity and free energy per spin of the L x L torus."""
    result = exact.kaufman(L, T, J)
    return {
        "source": "Kaufman exact finite-lattice solution",
        "e": float(result.energy),
        "c": float(result.heat_capacity),
        "f": float(result.free_energy),
    }


def reference_monte_carlo(
    model: IsingModel,
    L: int,
    temperatures: Sequence[float],
    *,
    key: jax.Array,
    n_chains: int = 32,
    n_sweeps: int = 10000,
    burn_in: int = 1000,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Observables of the true model by checkerboard Metropolis.

    Returns:
        ``(rows, snapshots)``: one row per temperature (as in
        :func:`dcl_prob.transfer.transfer`) and ``{T: spins (n_chains, L, L)}``,
        the final configuration of every chain at each temperature.
    """
    temperatures = check_temperatures(temperatures)
    kernel_beta = checkerboard.build_kernel(model)

    def kernel(key, state, beta):
        return kernel_beta(key, state, 1.0 / beta)

    n_total = n_chains * temperatures.size
    key_init, key_run = jax.random.split(key)
    spins = ordered_start(key_init, n_total, L)
    states = jax.vmap(lambda s: checkerboard.init(s, model))(spins)
    betas = jnp.asarray(np.repeat(1.0 / temperatures, n_chains), jnp.float32)
    n_sites = L * L
    snapshots = {}

    def observe(states):
        m = jnp.mean(states.spins.astype(jnp.float32), axis=(-2, -1))
        return {"e": states.energy / n_sites, "m": m}

    traces, final_states = run_chains(
        kernel,
        states,
        betas,
        observe,
        key=key_run,
        n_sweeps=n_sweeps,
        burn_in=burn_in,
        description=f"reference MC L={L}",
        progress=progress,
    )
    rows = []
    for k, T in enumerate(temperatures):
        chains = slice(k * n_chains, (k + 1) * n_chains)
        row = {"L": int(L), "T": float(T), "sampler": REFERENCE_SAMPLER}
        row.update(
            observables_from_traces(
                traces["e"][chains], traces["m"][chains], T, n_sites
            )
        )
        rows.append(row)
        snapshots[float(T)] = np.asarray(final_states.spins[chains])
    return rows, snapshots


def effective_coupling(
    energy: ExtensiveEnergy, model: IsingModel, spins: np.ndarray
) -> float:
    """Least-squares slope of learned against true single-flip energy changes.

    A value of 1 means the learned energy has the true energy scale on these
    configurations. An error of 1% shifts the learned critical temperature by
    about 1%, because T_c is proportional to the coupling.
    """
    spins = jnp.asarray(spins)
    learned = np.asarray(
        eqx.filter_jit(lambda e, s: e.flip_energy_changes(s))(energy, spins)
    )
    true = np.asarray(model.flip_energy_change(spins))
    return float(np.sum(learned * true) / np.sum(true * true))


def ising_energy_network(
    J: float = 1.0, focus: int = 2, context: int = 1
) -> ExtensiveEnergy:
    """Build an :class:`ExtensiveEnergy` that equals the Ising energy.

    Each tile carries the bonds from its ``focus x focus`` focus sites to their
    right and lower neighbours, so every bond of the lattice is counted once
    for every ``L`` that is a multiple of ``focus``.
    The neighbours lie inside the tile because ``context >= 1``. With focus 1
    and context 1 the tiles are 3 x 3, so the network applies to a 3 x 3
    lattice. The tile perceptron's output weights are zero. Used to test
    samplers and transfer against exact results.

    Raises:
        ValueError: if ``focus < 1`` or ``context < 1``.
    """
    if focus < 1 or context < 1:
        raise ValueError(
            f"focus={focus} and context={context} are invalid: the Ising network "
            "needs focus >= 1 and context >= 1, so that every focus site's right "
            "and lower neighbours lie inside its tile"
        )
    energy = ExtensiveEnergy(
        focus=focus, context=context, z2=True, key=jax.random.key(0)
    )
    width = focus + 2 * context
    focus_range = range(context, context + focus)
    pair = np.zeros((width * width, width * width), np.float32)
    for i in focus_range:
        for j in focus_range:
            site = i * width + j
            for other in (i * width + j + 1, (i + 1) * width + j):
                pair[site, other] -= J
    last_weight, last_bias = energy.layers[-1]
    layers = list(energy.layers[:-1]) + [(jnp.zeros_like(last_weight), last_bias)]
    energy = eqx.tree_at(lambda e: e.pair_weight, energy, jnp.asarray(pair))
    return eqx.tree_at(lambda e: e.layers, energy, layers)
