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
from dcl_prob.montecarlo import simulate
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.nn.tiles import extract_tiles, neighbour_positions
from dcl_prob.samplers import checkerboard
from dcl_prob.transfer import (
    check_temperatures,
    observables_from_traces,
    ordered_start,
    run_chains,
)

__all__ = [
    "bond_energy_changes",
    "effective_coupling",
    "effective_pair_couplings",
    "kaufman_reference",
    "potts_energy_network",
    "reference_monte_carlo",
    "reference_simulation",
    "uniform_mean_energy",
    "spin_glass_energy_network",
]

BOND_OFFSETS = ((0, 1), (1, 0))  # the right and the down bond of a site
REFERENCE_SAMPLER = "checkerboard Metropolis on the true Hamiltonian, ordered start"


def kaufman_reference(L: int, T: float, J: float = 1.0) -> dict:
    """Exact energy, heat capacity and free energy per spin of the L x L torus.

    Args:
        L: linear lattice size, >= 2.
        T: temperature in units of J/k_B (``k_B = 1``).
        J: nearest-neighbour coupling of the zero-field Ising model.

    Returns:
        ``{"source", "e", "c", "f"}``: the energy, heat capacity and free energy
        per spin as floats, from :func:`dcl_prob.exact.kaufman`.
    """
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


def _chain_mean(values: np.ndarray) -> tuple[float, float]:
    """Return the mean of ``values (draw, chain)`` and its error over chains."""
    means = np.mean(values, axis=0)
    return float(np.mean(means)), float(np.std(means, ddof=1) / np.sqrt(means.size))


def uniform_mean_energy(model) -> float:
    """Return the mean energy per spin of ``model`` over uniform random states.

    A learned energy is fixed to average zero there
    (:func:`~dcl_prob.nn.ednn.fix_energy_offset`), so reference energies are
    compared after subtracting this constant: ``-2 J / q`` for the standard
    Potts model (two bonds per site, each ``-J`` with probability ``1 / q``),
    and 0 for the Ising, clock and spin-glass models.

    Args:
        model: a model of :mod:`dcl_prob.hamiltonians` or a spin glass.

    Returns:
        The mean energy per spin, in the energy units of ``model``.
    """
    table = getattr(model, "_pair_table", None)
    if table is None:
        return 0.0
    return float(-2.0 * model.J * np.mean(table()))


def reference_simulation(
    model,
    L: int,
    temperatures: Sequence[float],
    *,
    key: jax.Array,
    n_samples: int = 4096,
    order_parameter: str = "magnetization",
    progress: bool = True,
) -> list[dict]:
    """Measure the energy and order parameter of a true model with :func:`simulate`.

    One run of the model's default sampler per temperature (Swendsen-Wang for
    Potts, parallel tempering for the spin glass, heat bath for the others),
    thinned by its measured autocorrelation time. Errors are the standard
    error of the chain means over the independent chains.

    Args:
        model: a model of :mod:`dcl_prob.hamiltonians`.
        L: lattice size (the spin glass's own ``L``).
        temperatures: target temperatures (k_B = 1).
        key: PRNG key.
        n_samples: configurations per temperature, split over 32 chains.
        order_parameter: a name of
            :data:`~dcl_prob.transfer.ORDER_PARAMETERS`; the overlap pairs
            chains ``2j`` and ``2j + 1``, the others use
            ``model.order_parameter``.

    Returns:
        One row per temperature: ``L``, ``T``, ``e``, ``e_err``, ``abs_m``,
        ``abs_m_err`` (per spin), ``order_parameter``, ``source`` and
        ``energy_shift``. ``e`` is shifted by ``energy_shift``, minus
        :func:`uniform_mean_energy`, to the constant of a learned energy.
    """
    temperatures = check_temperatures(temperatures)
    shift = -uniform_mean_energy(model)
    rows = []
    for T, key_T in zip(temperatures, jax.random.split(key, temperatures.size)):
        result = simulate(model, L, float(T), n_samples, key=key_T, progress=progress)
        n_chains = result.n_chains
        n_draws = result.spins.shape[0] // n_chains
        n_kept = n_draws * n_chains
        energy = result.energy[:n_kept].reshape(n_draws, n_chains) / (L * L) + shift
        if order_parameter == "overlap":
            spins = result.spins[:n_kept].reshape(n_draws, n_chains // 2, 2, L, L)
            values = spins.astype(np.float32)
            order = np.abs(np.mean(values[:, :, 0] * values[:, :, 1], axis=(-2, -1)))
        else:
            order = result.abs_m[:n_kept].reshape(n_draws, n_chains)
        e, e_err = _chain_mean(energy)
        m, m_err = _chain_mean(order)
        rows.append(
            {
                "L": int(L),
                "T": float(T),
                "e": e,
                "e_err": e_err,
                "abs_m": m,
                "abs_m_err": m_err,
                "order_parameter": order_parameter,
                "energy_shift": shift,
                "source": f"{result.sampler} on the true Hamiltonian, "
                f"{n_kept} configurations thinned every {result.thin} steps",
            }
        )
    return rows


def effective_coupling(
    energy: ExtensiveEnergy, model: IsingModel, spins: np.ndarray
) -> float:
    """Least-squares slope of learned against true single-flip energy changes.

    A value of 1 means the learned energy has the true energy scale on these
    configurations. An error of 1% shifts the learned critical temperature by
    about 1%, because T_c is proportional to the coupling.

    Args:
        energy: the learned energy, for Ising spins.
        model: the true Ising model, whose ``flip_energy_change`` is compared.
        spins: configurations ``(n, L, L)`` of -1/+1 spins.

    Returns:
        The dimensionless slope ``sum(dE_learned * dE_true) / sum(dE_true**2)``
        over all sites and configurations.
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

    Args:
        J: nearest-neighbour coupling (energy units).
        focus: focus block side ``f`` of the tiles.
        context: context border ``c`` of the tiles, at least 1.

    Returns:
        An :class:`ExtensiveEnergy` whose total energy of spins ``(..., L, L)``
        is ``-J sum_<ij> s_i s_j``, shape ``(...)``.

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


def _focus_bonds(focus: int, context: int) -> list[tuple[int, int]]:
    """Tile positions ``(site, neighbour)`` of the right and lower bonds of every
    focus site; each lattice bond belongs to exactly one tile."""
    width = focus + 2 * context
    focus_range = range(context, context + focus)
    bonds = []
    for i in focus_range:
        for j in focus_range:
            site = i * width + j
            bonds += [(site, site + 1), (site, site + width)]
    return bonds


def _without_perceptron_output(energy: ExtensiveEnergy) -> ExtensiveEnergy:
    """Return ``energy`` with the output weights of its perceptron set to zero."""
    if not energy.layers:
        return energy
    last_weight, last_bias = energy.layers[-1]
    layers = list(energy.layers[:-1]) + [(jnp.zeros_like(last_weight), last_bias)]
    return eqx.tree_at(lambda e: e.layers, energy, layers)


def potts_energy_network(
    q: int,
    J: float = 1.0,
    focus: int = 2,
    context: int = 1,
    colour_symmetric: bool = False,
    hidden: tuple[int, ...] = (32, 64),
) -> ExtensiveEnergy:
    """Build a ``q``-state :class:`ExtensiveEnergy` that equals the Potts energy
    ``-J sum_<ij> delta(s_i, s_j)``.

    The pair term carries ``-J delta`` on the right and lower bonds of every
    focus site, as in :func:`ising_energy_network`: on the one-hot entries
    ``(i, a), (j, a)`` for every colour ``a``, or on the delta of the pair with
    ``colour_symmetric=True``. The perceptron (``hidden`` widths, ``()`` for
    none) has zero output weights.

    Raises:
        ValueError: if ``q < 3``, ``focus < 1`` or ``context < 1``.
    """
    if focus < 1 or context < 1:
        raise ValueError(
            f"focus={focus} and context={context} are invalid: the Potts network "
            "needs focus >= 1 and context >= 1"
        )
    energy = ExtensiveEnergy(
        focus=focus,
        context=context,
        hidden=hidden,
        key=jax.random.key(0),
        n_states=q,
        colour_symmetric=colour_symmetric,
    )
    pair = np.zeros(energy.pair_weight.shape, np.float32)
    for site, other in _focus_bonds(focus, context):
        if colour_symmetric:
            pair[site, other] -= J
        else:
            for a in range(q):
                pair[site * q + a, other * q + a] -= J
    energy = eqx.tree_at(lambda e: e.pair_weight, energy, jnp.asarray(pair))
    return _without_perceptron_output(energy)


def spin_glass_energy_network(
    bonds, focus: int = 2, context: int = 1, hidden: tuple[int, ...] = (32, 64)
) -> ExtensiveEnergy:
    """Build an :class:`ExtensiveEnergy` with bond couplings set to ``bonds``.

    It equals ``-sum_<ij> J_ij s_i s_j`` of
    :class:`~dcl_prob.spin_glass.EdwardsAndersonModel` with the same float32
    bonds ``(2, L, L)``. The perceptron (``hidden`` widths, ``()`` for none)
    has zero output weights.
    """
    bonds = jnp.asarray(bonds, jnp.float32)
    energy = ExtensiveEnergy(
        focus=focus,
        context=context,
        hidden=hidden,
        key=jax.random.key(0),
        bond_couplings=bonds.shape[-1],
    )
    energy = eqx.tree_at(lambda e: e.bonds, energy, bonds)
    return _without_perceptron_output(energy)


def bond_energy_changes(energy: ExtensiveEnergy, s: jax.Array) -> jax.Array:
    """Energy change of setting both sites of each bond to every pair of values.

    For the bond from site ``i = (r, c)`` in direction ``d`` to
    ``j = (r, c + 1)`` (``d = 0``) or ``(r + 1, c)`` (``d = 1``), entry
    ``[b, d, r, c, x, y]`` is ``E(s with s_i = v_x, s_j = v_y) - E(s)``
    with ``v = energy.state_values``. Only the tiles that contain ``i`` or
    ``j`` are evaluated.

    Args:
        energy: an energy network.
        s: configurations ``(B, L, L)`` of its states.

    Returns:
        float32 array ``(B, 2, L, L, n_states, n_states)``.
    """
    B, L = s.shape[0], s.shape[-1]
    geometry = energy.geometry(L)
    tiles = extract_tiles(s, geometry)  # (B, T, P)
    values = jnp.asarray(energy.state_values, jnp.float32)
    first = energy.site_energy_changes(s).reshape(B, L * L, energy.n_states, 1)
    tables = []
    for offset in BOND_OFFSETS:
        neighbour, partner = neighbour_positions(
            L, energy.focus, energy.context, offset
        )
        tile_index = geometry.site_tiles[neighbour] % geometry.n_tiles  # (N, K)
        at_partner = jax.nn.one_hot(partner, energy.tile_size) > 0  # (N, K, P)
        at_site = (
            jax.nn.one_hot(geometry.site_positions[neighbour], energy.tile_size) > 0
        )
        # s_i = v_x in the tiles of j, then also s_j = v_y.
        with_partner = jnp.where(
            at_partner[:, :, None, :],
            values[:, None],
            tiles[:, tile_index][:, :, :, None, :],
        )  # (B, N, K, n_states, P)
        with_both = jnp.where(
            at_site[:, :, None, None, :],
            values[:, None],
            with_partner[..., None, :],
        )  # (B, N, K, n_states, n_states, P)
        energy_partner = energy.tile_energy(with_partner, tile_index[..., None])
        energy_both = energy.tile_energy(with_both, tile_index[..., None, None])
        mask = geometry.site_mask[neighbour][..., None, None]  # (N, K, 1, 1)
        second = (energy_both - energy_partner[..., None]) * mask
        tables.append(first + jnp.sum(second, axis=2))  # (B, N, x, y)
    tables = jnp.stack(tables, axis=1)
    shape = (B, 2, L, L, energy.n_states, energy.n_states)
    return tables.reshape(shape).astype(jnp.float32)


@eqx.filter_jit
def _pair_couplings(energy: ExtensiveEnergy, spins: jax.Array) -> jax.Array:
    """Effective coupling of every bond in every configuration, ``(B, 2, L, L)``."""
    tables = bond_energy_changes(energy, spins)  # (B, 2, L, L, q, q)
    q = energy.n_states
    equal = jnp.trace(tables, axis1=-2, axis2=-1) / q
    different = (jnp.sum(tables, axis=(-2, -1)) - q * equal) / (q * (q - 1))
    scale = 0.5 if q == 2 else 1.0
    return scale * (different - equal)


def effective_pair_couplings(
    energy: ExtensiveEnergy, spins, batch_size: int = 64
) -> np.ndarray:
    """Nearest-neighbour couplings of a learned energy by finite differences.

    For the bond between sites ``i`` and ``j`` let ``f(a, b)`` be the energy
    with ``s_i = a`` and ``s_j = b`` and every other site as in a
    configuration. Terms that depend on one of the two sites only cancel in

        J_ij = kappa * (mean_{a != b} f(a, b) - mean_a f(a, a)),

    which is averaged over the configurations. For ``q > 2`` states
    ``kappa = 1`` and ``J_ij`` is the coupling of ``-J delta(s_i, s_j)``: it is
    the least-squares fit of ``-J delta`` to the ``q x q`` table of ``f`` after
    removing terms of one site. For spins +-1 ``kappa = 1/2`` and ``J_ij`` is
    the coupling of ``-J s_i s_j``, the double difference
    ``-[E(s) - E(s^i) - E(s^j) + E(s^ij)] / (4 s_i s_j)`` with ``s^i`` the
    configuration with spin ``i`` flipped. For a pair Hamiltonian the result
    is exact in every configuration; for a learned energy with many-site
    terms it depends on the configurations.

    Args:
        energy: the learned energy.
        spins: configurations ``(n, L, L)`` of the energy's states.
        batch_size: configurations per evaluation.

    Returns:
        float64 array ``(2, L, L)`` in the bond layout of
        :class:`~dcl_prob.spin_glass.EdwardsAndersonModel`: ``[0, i, j]`` for
        the bond from ``(i, j)`` to ``(i, j + 1)``, ``[1, i, j]`` to
        ``(i + 1, j)``.
    """
    spins = np.asarray(spins)
    if spins.ndim != 3 or spins.shape[0] == 0 or spins.shape[1] != spins.shape[2]:
        raise ValueError(
            f"spins of shape {spins.shape} are invalid: pass at least one "
            "configuration of shape (L, L), as (n, L, L)"
        )
    n = spins.shape[0]
    batch_size = min(int(batch_size), n)
    total = np.zeros((2,) + spins.shape[1:], np.float64)
    for start in range(0, n, batch_size):
        chunk = spins[start : start + batch_size]
        n_real = chunk.shape[0]
        if n_real < batch_size:  # pad to one shape, so one compilation serves all
            padding = np.repeat(chunk[:1], batch_size - n_real, axis=0)
            chunk = np.concatenate([chunk, padding])
        couplings = np.asarray(_pair_couplings(energy, jnp.asarray(chunk)))
        total += couplings[:n_real].sum(axis=0)
    return total / n
