"""Reference Monte Carlo: decorrelated equilibrium samples of a lattice model.

:func:`simulate` runs vectorised chains of a sampler from
:mod:`dcl_prob.samplers` (see :mod:`dcl_prob.samplers.registry` for the
names and the models each accepts) in three stages:

1. burn-in from random (infinite-temperature) spins, discarded;
2. a pilot run that records the energy and the model's order parameter
   (``|m|`` for the Ising model) after every step and measures
   their integrated autocorrelation times from ArviZ's bulk ESS as
   ``tau = draws * chains / ess_bulk``, so uncorrelated draws give 1. The
   pilot is doubled until it is at least ``PILOT_TAU_FACTOR`` times the
   larger ``tau`` long;
3. production, keeping one state every ``thin = ceil(max tau)`` steps.

Every stage runs in chunks of steps inside one jitted ``lax.scan`` and
returns to Python only to update the progress bar. A step is one sweep for
the checkerboard samplers, one cluster flip for Wolff, one update of all
clusters for Swendsen-Wang, and one sweep of every replica plus one round of
swaps for parallel tempering. Samples are taken
after a fixed number of steps, never after a state-dependent number, because
measuring a cluster sampler after a state-dependent number of flips biases
the samples.
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dcl_prob.diagnostics import arviz, integrated_autocorrelation_time
from dcl_prob.lattice import check_lattice_size
from dcl_prob.samplers.checkerboard import check_temperature
from dcl_prob.samplers.registry import (
    SAMPLERS,
    resolve_sampler,
    temperature_ladder,
)

__all__ = [
    "DEFAULT_BURN_IN",
    "DEFAULT_N_CHAINS",
    "DEFAULT_PILOT_STEPS",
    "SAMPLERS",
    "SimulationResult",
    "integrated_autocorrelation_time",
    "simulate",
]

logger = logging.getLogger(__name__)


DEFAULT_N_CHAINS = 32
DEFAULT_BURN_IN = 1000
DEFAULT_PILOT_STEPS = 2000
# Short runs underestimate tau. emcee's integrated_time(x, c=5, tol=50) also
# trusts its estimate only for chains of at least 50 tau.
PILOT_TAU_FACTOR = 50
MAX_PILOT_STEPS = 2**17
# Steps per chain in one jitted call. It sets how often the progress bar
# updates.
CHUNK_STEPS = 1024
RHAT_WARNING_THRESHOLD = 1.05


class SimulationResult(NamedTuple):
    """Samples and run statistics returned by :func:`simulate`.

    Arrays are NumPy arrays on the host. Sample ``k`` comes from chain
    ``k % n_chains``, draw ``k // n_chains``.
    """

    # int8, shape (n_samples, L, L): -1/+1 spins, or states 0..q-1 of a Potts
    # or clock model
    spins: np.ndarray
    energy: np.ndarray  # float32, shape (n_samples,), total energy of each sample
    # float32, shape (n_samples,): model.order_parameter of each sample, |m| per
    # spin for the Ising-type models and the spin glass, the Potts order
    # parameter and the modulus of the clock magnetization
    abs_m: np.ndarray
    # integrated autocorrelation times in steps from the pilot run, keys
    # "energy" and "abs_m"
    tau_int: dict
    thin: int  # steps per chain between stored samples
    burn_in: int  # steps per chain discarded before the pilot run
    pilot_steps: int  # steps per chain of the pilot run that measured tau_int
    rhat: dict  # ArviZ rank-normalised R-hat of the pilot, keys as tau_int
    n_chains: int
    sampler: str
    temperature: float
    # Production mean of: the probability that a site changes (checkerboard,
    # heat-bath), the swap acceptance rate over the ladder pairs
    # (parallel-tempering), or 1.0, because every cluster update is accepted
    # (wolff, swendsen-wang).
    acceptance: float
    # wolff: mean spins per flip; swendsen-wang: mean of L * L / clusters;
    # else None
    mean_cluster_size: float | None
    # parallel-tempering: the ladder (increasing) that contains temperature;
    # else None
    temperatures: tuple[float, ...] | None = None

    def dataset_attrs(self, model, *, seed: int) -> dict:
        """Return the attributes that :func:`dcl_prob.data.save_dataset` writes.

        A spin glass also needs its bonds: pass ``bonds=model.bonds`` to
        ``save_dataset``.
        """
        L = int(self.spins.shape[-1])
        attrs = {
            **model.to_dict(),
            "lattice": "square_periodic",
            "L": L,
            "temperature": self.temperature,
            "sampler": self.sampler,
            "seed": int(seed),
            "encoding": model.encoding,
            "tau_int_energy": self.tau_int["energy"],
            "tau_int_abs_m": self.tau_int["abs_m"],
            "thin": self.thin,
            "burn_in": self.burn_in,
            "n_chains": self.n_chains,
        }
        if self.temperatures is not None:
            attrs["temperatures"] = list(self.temperatures)
        return attrs


def _random_spins(key: jax.Array, shape: tuple, state_values) -> jax.Array:
    """Uniformly random states of the model's ``state_values``, int8 ``shape``."""
    if len(state_values) == 2:
        up = jax.random.bernoulli(key, 0.5, shape)
        return jnp.where(up, int(state_values[1]), int(state_values[0])).astype(
            jnp.int8
        )
    values = jnp.asarray(state_values, dtype=jnp.int8)
    return values[jax.random.randint(key, shape, 0, len(state_values))]


@partial(jax.jit, static_argnames=("model", "sampler"))
def _init_chains(spins, *, model, sampler):
    init = SAMPLERS[sampler].init
    return jax.vmap(lambda s: init(s, model))(spins)


@partial(jax.jit, static_argnames=("model", "sampler", "n_draws", "store_spins"))
def _run_chunk(
    state,
    key,
    temperature,
    target,
    first_step,
    thin,
    n_valid,
    *,
    model,
    sampler,
    n_draws,
    store_spins,
):
    """Advance all chains by ``n_valid * thin`` steps, recording every draw.

    ``n_draws`` is the static number of draws in the output. The draws from
    ``n_valid`` on run no steps, so one compiled shape also serves the last,
    shorter chunk of a stage. The key of global step ``t`` of a stage is
    ``fold_in(key, t)``, so the chains do not depend on how a stage is cut
    into chunks. ``temperature`` is the ladder of parallel tempering, and
    ``target`` the ladder position whose configurations are recorded.

    Returns:
        ``(state, energy, abs_m, spins, stat_sum)``: energy and abs_m of
        shape ``(n_draws, n_chains)``, spins ``(n_draws, n_chains, L, L)``
        or None, and the sum over the steps of the sampler's info statistic,
        shape ``(n_chains,)``.
    """
    spec = SAMPLERS[sampler]
    kernel = spec.build_kernel(model)
    step_chains = jax.vmap(kernel, in_axes=(0, 0, None))
    observe_chains = jax.vmap(spec.observe, in_axes=(0, None))
    statistic_chains = jax.vmap(spec.statistic)
    n_chains = _n_chains(state)

    def one_step(step, carry):
        state, stat_sum = carry
        keys = jax.random.split(jax.random.fold_in(key, step), n_chains)
        state, info = step_chains(keys, state, temperature)
        return state, stat_sum + statistic_chains(info).astype(jnp.float32)

    def one_draw(carry, draw):
        start = first_step + draw * thin
        n_steps = jnp.where(draw < n_valid, thin, 0)
        state, stat_sum = jax.lax.fori_loop(start, start + n_steps, one_step, carry)
        spins, energy = observe_chains(state, target)
        abs_m = model.order_parameter(spins)
        return (state, stat_sum), (energy, abs_m, spins if store_spins else None)

    carry = (state, jnp.zeros((n_chains,), jnp.float32))
    (state, stat_sum), (energy, abs_m, spins) = jax.lax.scan(
        one_draw, carry, jnp.arange(n_draws, dtype=jnp.int32)
    )
    return state, energy, abs_m, spins, stat_sum


def _n_chains(state) -> int:
    """Return the size of the leading chain axis of a batched state."""
    return jax.tree.leaves(state)[0].shape[0]


def _chunk_draws(total_draws: int, thin: int) -> int:
    """Draws per jitted call: a power of two, so few shapes are compiled."""
    target = max(1, CHUNK_STEPS // thin)
    needed = min(target, total_draws)
    return 1 << (needed - 1).bit_length()


class _Runner:
    """Runs the stages of all chains and advances one progress bar."""

    def __init__(self, model, sampler, temperature, target, state, progress_bar):
        self.model = model
        self.sampler = sampler
        self.temperature = jnp.asarray(temperature, dtype=jnp.float32)
        self.target = jnp.int32(target)
        self.state = state
        self.progress_bar = progress_bar

    def run(self, key, total_draws, thin, *, store_spins):
        """Run ``total_draws * thin`` steps, keeping every ``thin``-th state.

        Returns:
            ``(energy, abs_m, spins, stat_mean)``. The arrays are on the host,
            with shape ``(total_draws, n_chains, ...)``, and spins is None
            unless ``store_spins``. ``stat_mean`` is the mean of the sampler's
            info statistic over all steps and chains.
        """
        n_draws = _chunk_draws(total_draws, thin)
        energies, abs_ms, spins = [], [], []
        stat_total = 0.0
        done = 0
        while done < total_draws:
            n_valid = min(n_draws, total_draws - done)
            self.state, energy, abs_m, chunk_spins, stat_sum = _run_chunk(
                self.state,
                key,
                self.temperature,
                self.target,
                jnp.int32(done * thin),
                jnp.int32(thin),
                jnp.int32(n_valid),
                model=self.model,
                sampler=self.sampler,
                n_draws=n_draws,
                store_spins=store_spins,
            )
            energies.append(np.asarray(energy[:n_valid]))
            abs_ms.append(np.asarray(abs_m[:n_valid]))
            stat_total += float(np.sum(np.asarray(stat_sum), dtype=np.float64))
            if store_spins:
                spins.append(np.asarray(chunk_spins[:n_valid]))
            self.progress_bar.update(n_valid * thin)
            done += n_valid

        n_chains = _n_chains(self.state)
        stat_mean = stat_total / (total_draws * thin * n_chains)
        stored = np.concatenate(spins) if store_spins else None
        return np.concatenate(energies), np.concatenate(abs_ms), stored, stat_mean


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is invalid: it must be an integer")
    if value < minimum:
        raise ValueError(f"{name}={value} is invalid: it must be at least {minimum}")
    return int(value)


def _measure_tau(energy, abs_m):
    """Return tau_int and R-hat of ``(draw, chain)`` pilot traces."""
    traces = {"energy": energy.T, "abs_m": abs_m.T}
    tau = {name: integrated_autocorrelation_time(x) for name, x in traces.items()}
    rhat = {}
    for name, trace in traces.items():
        rhat[name] = (
            1.0 if np.ptp(trace) == 0 else float(np.squeeze(arviz().rhat(trace)))
        )
    return tau, rhat


def _run_pilot(runner: _Runner, key: jax.Array, pilot_steps: int):
    """Measure tau_int, doubling the pilot run until it is long enough.

    Each try continues the chains with a fresh pilot run of twice the length
    and measures tau on that run alone.

    Returns:
        ``(tau, rhat, pilot_steps)`` of the last pilot run.
    """
    attempt = 0
    while True:
        energy, abs_m, _, _ = runner.run(
            jax.random.fold_in(key, attempt), pilot_steps, 1, store_spins=False
        )
        tau, rhat = _measure_tau(energy, abs_m)
        tau_max = max(tau.values())
        if pilot_steps >= PILOT_TAU_FACTOR * tau_max:
            return tau, rhat, pilot_steps
        if 2 * pilot_steps > MAX_PILOT_STEPS:
            logger.warning(
                "pilot run of %d steps is shorter than %d tau_int (tau_int = "
                "%.1f steps), so tau_int and thin may be underestimated; use a "
                "faster sampler or a smaller lattice",
                pilot_steps,
                PILOT_TAU_FACTOR,
                tau_max,
            )
            return tau, rhat, pilot_steps
        logger.info(
            "pilot run of %d steps is shorter than %d tau_int (%.1f steps); "
            "running %d steps",
            pilot_steps,
            PILOT_TAU_FACTOR,
            tau_max,
            2 * pilot_steps,
        )
        pilot_steps *= 2
        attempt += 1
        runner.progress_bar.total += pilot_steps


def simulate(
    model,
    L: int,
    temperature: float,
    n_samples: int,
    *,
    key: jax.Array,
    sampler: str | None = None,
    n_chains: int = DEFAULT_N_CHAINS,
    burn_in: int = DEFAULT_BURN_IN,
    pilot_steps: int = DEFAULT_PILOT_STEPS,
    thin: int | None = None,
    temperatures=None,
    progress: bool = True,
) -> SimulationResult:
    """Draw ``n_samples`` decorrelated equilibrium configurations of ``model``.

    Args:
        model: a model of :mod:`dcl_prob.hamiltonians` (Ising, Ising-NNN,
            Potts, clock or Edwards-Anderson spin glass).
        L: linear lattice size, at least 2; for the spin glass the ``L`` of
            its bonds.
        temperature: temperature ``T`` (k_B = 1).
        n_samples: number of configurations returned, split over the chains.
        key: JAX PRNG key; the same key gives bitwise the same output on the
            same platform.
        sampler: a name of :data:`~dcl_prob.samplers.registry.SAMPLERS`, or
            None for the model's default: ``"wolff"`` for the Ising model,
            ``"swendsen-wang"`` for Potts, ``"parallel-tempering"`` for the
            spin glass, ``"heat-bath"`` for the others. ``"wolff"`` (one step
            is one cluster flip; ``h = 0`` only) or ``"checkerboard"`` (one
            step is one Metropolis sweep) for the Ising model: far above T_c
            Wolff clusters have few spins, so there the checkerboard sampler
            decorrelates faster per second. For the other models
            ``"checkerboard"`` runs ``"heat-bath"``, and the result records
            that name.
        n_chains: independent chains run in parallel with ``jax.vmap``.
        burn_in: steps per chain discarded before the pilot run. The pilot,
            at least ``PILOT_TAU_FACTOR * tau`` steps long, also precedes
            production, so production starts at least that many steps after
            the burn-in.
        pilot_steps: initial steps per chain of the pilot run; it is doubled
            (up to ``MAX_PILOT_STEPS``) until it is long enough.
        thin: steps per chain between stored samples; None uses
            ``ceil(max(tau_energy, tau_abs_m))``, at least 1.
        temperatures: ladder of ``"parallel-tempering"``, increasing and
            containing ``temperature``; None uses
            :func:`~dcl_prob.samplers.registry.temperature_ladder`'s default,
            16 temperatures from ``T`` to ``4 T``. Rejected for the other
            samplers.
        progress: show a tqdm progress bar. It is always off when the
            environment variable ``CI`` is set.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: for an unknown sampler, a sampler that does not accept
            the model, an invalid size, count, temperature or ladder, and
            for ``h != 0`` with Wolff.
    """
    sampler = resolve_sampler(model, sampler)
    spec = SAMPLERS[sampler]
    L = check_lattice_size(L)
    if getattr(model, "L", L) != L:
        raise ValueError(
            f"L={L} is invalid for a spin glass with bonds of L={model.L}: pass "
            f"L={model.L} or draw bonds for L={L}"
        )
    check_temperature(temperature)
    temperature = float(temperature)
    n_samples = _check_count("n_samples", n_samples, 1)
    n_chains = _check_count("n_chains", n_chains, 1)
    burn_in = _check_count("burn_in", burn_in, 0)
    pilot_steps = _check_count("pilot_steps", pilot_steps, 2)
    if thin is not None:
        thin = _check_count("thin", thin, 1)
    if spec.uses_ladder:
        ladder, target = temperature_ladder(temperature, temperatures)
        run_temperature = ladder
        chain_shape = (n_chains, ladder.size, L, L)
    elif temperatures is not None:
        raise ValueError(
            f"temperatures={temperatures!r} is invalid for sampler={sampler!r}: "
            "a ladder is used only by sampler='parallel-tempering'; remove it"
        )
    else:
        ladder, target = None, 0
        run_temperature = temperature
        chain_shape = (n_chains, L, L)
    # Building the kernel here makes h != 0 with Wolff fail before compilation.
    spec.build_kernel(model)

    init_key, burn_key, pilot_key, production_key = jax.random.split(key, 4)
    state = _init_chains(
        _random_spins(init_key, chain_shape, model.state_values),
        model=model,
        sampler=sampler,
    )
    n_draws = math.ceil(n_samples / n_chains)
    progress_bar = tqdm(
        total=burn_in + pilot_steps + n_draws * (thin or 1),
        unit="step",
        desc=f"{sampler} L={L} T={temperature:g}",
        disable=not progress or "CI" in os.environ,
    )
    with progress_bar:
        runner = _Runner(model, sampler, run_temperature, target, state, progress_bar)
        if burn_in:
            runner.run(burn_key, burn_in, 1, store_spins=False)

        tau, rhat, pilot_steps = _run_pilot(runner, pilot_key, pilot_steps)
        tau_max = max(tau.values())
        for name, value in rhat.items():
            if value > RHAT_WARNING_THRESHOLD:
                logger.warning(
                    "pilot R-hat of %s is %.3f > %.2f: the chains may not have "
                    "reached equilibrium; increase burn_in (now %d steps)",
                    name,
                    value,
                    RHAT_WARNING_THRESHOLD,
                    burn_in,
                )

        if thin is None:
            thin = max(1, math.ceil(tau_max))
            progress_bar.total += n_draws * (thin - 1)
        logger.info(
            "tau_int: energy %.2f, order parameter %.2f steps; thin = %d",
            tau["energy"],
            tau["abs_m"],
            thin,
        )
        energy, abs_m, spins, stat_mean = runner.run(
            production_key, n_draws, thin, store_spins=True
        )

    # (draw, chain, ...) -> (draw * chain, ...), then cut to n_samples.
    spins = spins.reshape(-1, L, L)[:n_samples]
    energy = energy.reshape(-1)[:n_samples]
    abs_m = abs_m.reshape(-1)[:n_samples]
    is_cluster = sampler in ("wolff", "swendsen-wang")
    return SimulationResult(
        spins=spins,
        energy=energy,
        abs_m=abs_m,
        tau_int={name: float(value) for name, value in tau.items()},
        thin=int(thin),
        burn_in=int(burn_in),
        pilot_steps=int(pilot_steps),
        rhat=rhat,
        n_chains=n_chains,
        sampler=sampler,
        temperature=temperature,
        acceptance=1.0 if is_cluster else stat_mean,
        mean_cluster_size=stat_mean if is_cluster else None,
        temperatures=None if ladder is None else tuple(ladder.tolist()),
    )
