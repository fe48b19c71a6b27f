"""Validate a fitted model with independent samplers, behind ``dcl validate``.

At every requested temperature, on the learned energy ``E``:

* two different Markov chain samplers, each with several chains: tile-aware
  local Metropolis, and replica exchange over the temperature ladder with the
  same local kernel. Both report e and ``|m|`` with ArviZ's R-hat, ESS and MCSE,
  and their difference in standard errors;
* ``ln Z`` by tempered SMC from infinite temperature, and by importance
  sampling from q (at the training size only, where q is defined), with the
  effective sample size of the weights.

At the training temperature, neural independence Metropolis-Hastings with q
as proposal gives the acceptance rate, a direct measure of how close q is to
``exp(-E / T0)``. A warning is issued for every R-hat above 1.01 and every
bulk ESS below 400.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dcl_prob import exact
from dcl_prob.diagnostics import plot_diagnostics, summarize_traces, to_inference_data
from dcl_prob.model_io import LoadedModel
from dcl_prob.samplers import neural, smc, tile_local
from dcl_prob.samplers.replica_exchange import replica_exchange
from dcl_prob.training import progress_enabled
from dcl_prob.transfer import (
    check_temperatures,
    ordered_start,
    run_tile_chains,
)

__all__ = ["RHAT_LIMIT", "ESS_LIMIT", "validate"]

logger = logging.getLogger(__name__)

RHAT_LIMIT = 1.01
ESS_LIMIT = 400


def _check_convergence(summary: dict, label: str, problems: list) -> None:
    for name, values in summary.items():
        if values["rhat"] > RHAT_LIMIT:
            problems.append(f"{label}: R-hat of {name} is {values['rhat']:.3f} > 1.01")
        if values["ess_bulk"] < ESS_LIMIT:
            problems.append(
                f"{label}: bulk ESS of {name} is {values['ess_bulk']:.0f} < 400"
            )


def _local_metropolis(
    energy, L, temperatures, n_chains, n_sweeps, burn_in, key, progress
):
    """Traces ``(T, chain, draw)`` of e and m from tile-local Metropolis."""
    traces = run_tile_chains(
        energy,
        L,
        temperatures,
        key=key,
        n_chains=n_chains,
        n_sweeps=n_sweeps,
        burn_in=burn_in,
        description=f"local Metropolis L={L}",
        progress=progress,
    )
    shape = (temperatures.size, n_chains, -1)
    return {name: value.reshape(shape) for name, value in traces.items()}


def _replica_exchange(
    energy, L, temperatures, n_chains, n_sweeps, burn_in, key, progress, chunk_size=100
):
    """Traces ``(T, chain, draw)`` of e and m and mean swap rates from replica
    exchange on the temperature ladder, with the tile-local kernel inside."""
    order = np.argsort(temperatures)
    ladder = jnp.asarray(temperatures[order], jnp.float32)
    local = tile_local.build_kernel(energy, L)
    algorithm = replica_exchange(
        lambda k, state, T: local(k, state, 1.0 / T),
        lambda spins: tile_local.init(spins, energy),
        lambda state: state.energy,
        ladder,
    )
    key_init, key_run = jax.random.split(key)
    spins = ordered_start(key_init, n_chains * ladder.size, L)
    spins = spins.reshape(n_chains, ladder.size, L, L)
    states = jax.jit(jax.vmap(algorithm.init))(spins)

    @jax.jit
    def run_chunk(states, key):
        def step(states, key):
            keys = jax.random.split(key, n_chains)
            states, info = jax.vmap(algorithm.step)(keys, states)
            spins = states.replicas.spins.astype(jnp.float32)
            record = {
                "e": states.replicas.energy / (L * L),
                "m": jnp.mean(spins, axis=(-2, -1)),
                "swap": info.swap_acceptance_rate,
            }
            return states, record

        return jax.lax.scan(step, states, jax.random.split(key, chunk_size))

    n_burn = -(-burn_in // chunk_size)
    n_record = max(1, -(-n_sweeps // chunk_size))
    records = []
    with tqdm(
        total=(n_burn + n_record) * chunk_size,
        leave=False,
        desc=f"replica exchange L={L}",
        disable=not progress_enabled(progress),
    ) as bar:
        for index, chunk_key in enumerate(jax.random.split(key_run, n_burn + n_record)):
            states, record = run_chunk(states, chunk_key)
            if index >= n_burn:
                records.append(jax.device_get(record))
            bar.update(chunk_size)
    # (draw, chain, ladder) -> (ladder, chain, draw), back in the input order.
    inverse = np.argsort(order)
    traces = {
        name: np.concatenate([r[name] for r in records]).transpose(2, 1, 0)[inverse]
        for name in ("e", "m")
    }
    swap = np.concatenate([r["swap"] for r in records]).mean(axis=(0, 1))
    return traces, {
        f"{ladder[k]:g}-{ladder[k + 1]:g}": float(swap[k]) for k in range(swap.size)
    }


def _neural_imh_acceptance(loaded, n_chains, n_steps, key) -> dict:
    """Acceptance rate and |m| of IMH with q as proposal at T0, training L."""
    q = loaded.distribution()
    T0 = loaded.temperature
    algorithm = neural.neural_imh(lambda s: -loaded.energy(s) / T0, q)
    key_init, key_run = jax.random.split(key)
    start = q.sample(key_init, (n_chains,))
    states = jax.vmap(algorithm.init)(start)

    @jax.jit
    def run(states, key):
        def step(states, key):
            states, info = jax.vmap(algorithm.step)(
                jax.random.split(key, n_chains), states
            )
            spins = states.position.spins.astype(jnp.float32)
            return states, (info.is_accepted, jnp.mean(spins, axis=(-2, -1)))

        return jax.lax.scan(step, states, jax.random.split(key, n_steps))

    _, (accepted, m) = run(states, key_run)
    summary = summarize_traces({"abs_m": np.abs(np.asarray(m)).T})
    return {
        "temperature": T0,
        "L": loaded.L,
        "n_chains": n_chains,
        "n_steps": n_steps,
        "acceptance_rate": float(np.mean(accepted)),
        "abs_m": summary["abs_m"],
    }


def _comparison(first: dict, second: dict) -> float:
    """Difference of two estimates in units of their combined standard error."""
    error = np.hypot(first["mcse"], second["mcse"])
    return float(abs(first["mean"] - second["mean"]) / error) if error > 0 else 0.0


def validate(
    loaded: LoadedModel,
    temperatures,
    *,
    key: jax.Array,
    L: int | None = None,
    n_chains: int = 4,
    n_sweeps: int = 2000,
    burn_in: int = 500,
    n_imh_steps: int = 2000,
    n_is_samples: int = 20000,
    smc_particles: int = 512,
    smc_runs: int = 8,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Check a fitted model with two samplers, neural IMH and two ln Z estimates.

    Args:
        loaded: a model from :func:`dcl_prob.model_io.load_model`.
        temperatures: temperatures to validate at (k_B = 1).
        key: PRNG key (keyword only).
        L: lattice size of the Markov chains and SMC (default: training size).
        n_chains: chains per sampler and temperature, at least 4.
        n_sweeps: recorded sweeps per chain.
        burn_in: discarded sweeps per chain.
        n_imh_steps: neural IMH steps per chain at the training temperature.
        n_is_samples: samples from q for importance sampling.
        smc_particles: particles per SMC run.
        smc_runs: independent SMC runs (their spread gives the error).
        out_dir: if given, ``validate.json`` and plots are written there.
        progress: show progress bars.

    Returns:
        A JSON-ready dict with one entry per temperature and a list of
        convergence warnings.
    """
    temperatures = check_temperatures(temperatures)
    if n_chains < 4:
        raise ValueError(f"n_chains={n_chains} is invalid: validation needs >= 4")
    L = int(L or loaded.L)
    energy = loaded.energy
    energy.geometry(L)
    keys = jax.random.split(key, 5)
    problems: list[str] = []

    local = _local_metropolis(
        energy, L, temperatures, n_chains, n_sweeps, burn_in, keys[0], progress
    )
    tempering, swap_rates = _replica_exchange(
        energy, L, temperatures, n_chains, n_sweeps, burn_in, keys[1], progress
    )
    imh = _neural_imh_acceptance(loaded, n_chains, n_imh_steps, keys[2])
    kaufman_J = None
    attrs = loaded.data_attrs
    if attrs.get("model") == "ising" and float(attrs.get("h", 0.0)) == 0.0:
        kaufman_J = float(attrs.get("J", 1.0))

    rows = []
    smc_keys = jax.random.split(keys[3], temperatures.size)
    is_keys = jax.random.split(keys[4], temperatures.size)
    for k, T in enumerate(temperatures):
        row = {"T": float(T), "L": L, "samplers": {}}
        for name, traces in (
            ("local_metropolis", local),
            ("replica_exchange", tempering),
        ):
            series = {"e": traces["e"][k], "abs_m": np.abs(traces["m"][k])}
            summary = summarize_traces(series)
            _check_convergence(summary, f"T={T:g} {name}", problems)
            row["samplers"][name] = summary
            if out_dir is not None and name == "local_metropolis":
                plot_diagnostics(
                    to_inference_data(series), Path(out_dir) / f"trace_T{T:g}.png"
                )
        first, second = (
            row["samplers"][n] for n in ("local_metropolis", "replica_exchange")
        )
        row["sampler_difference_sigma"] = {
            name: _comparison(first[name], second[name]) for name in ("e", "abs_m")
        }
        result = smc.smc_log_z(
            energy,
            L,
            float(T),
            key=smc_keys[k],
            n_particles=smc_particles,
            n_runs=smc_runs,
        )
        row["log_z_smc"] = {
            "log_z": result.log_z,
            "log_z_err": result.log_z_err,
            "n_particles": smc_particles,
            "n_runs": smc_runs,
        }
        if L == loaded.L:
            estimate = neural.importance_sampling(
                loaded.distribution(), energy, float(T), n_is_samples, key=is_keys[k]
            )
            row["log_z_is"] = {
                "log_z": estimate.log_z,
                "log_z_err": estimate.log_z_err,
                "ess": estimate.ess,
                "ess_fraction": estimate.ess_fraction,
            }
        if kaufman_J is not None:
            row["reference"] = {
                "source": "Kaufman exact finite-lattice solution",
                "log_z": float(exact.kaufman(L, float(T), kaufman_J).log_z),
            }
        rows.append(row)

    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    report = {
        "model_trained_at": {"T": loaded.temperature, "L": loaded.L},
        "L": L,
        "neural_imh": imh,
        "swap_acceptance_rates": swap_rates,
        "rows": rows,
        "warnings": problems,
    }
    if out_dir is not None:
        _plot_validation(report, Path(out_dir) / "validation.png")
    return report


def _plot_validation(report: dict, path: Path) -> None:
    """Plot e, |m| of both samplers and ln Z per spin of SMC and IS against T."""
    from matplotlib.figure import Figure

    from dcl_prob.plots import save_figure

    rows = report["rows"]
    T = np.array([row["T"] for row in rows])
    n_sites = report["L"] ** 2
    figure = Figure(figsize=(13, 4))
    axes = figure.subplots(1, 3)
    for offset, name in ((-0.01, "local_metropolis"), (0.01, "replica_exchange")):
        for ax, observable in zip(axes[:2], ("e", "abs_m")):
            values = [row["samplers"][name][observable] for row in rows]
            ax.errorbar(
                T + offset,
                [v["mean"] for v in values],
                yerr=[v["mcse"] for v in values],
                fmt="o",
                ms=4,
                label=name.replace("_", " "),
            )
            ax.set_ylabel({"e": "energy per spin e", "abs_m": "|m|"}[observable])
    for label, field in (("SMC", "log_z_smc"), ("IS from q", "log_z_is")):
        present = [row for row in rows if field in row]
        if present:
            axes[2].errorbar(
                [r["T"] for r in present],
                [r[field]["log_z"] / n_sites for r in present],
                yerr=[r[field]["log_z_err"] / n_sites for r in present],
                fmt="o",
                ms=4,
                label=label,
            )
    reference = [row for row in rows if "reference" in row]
    if reference:
        axes[2].plot(
            [r["T"] for r in reference],
            [r["reference"]["log_z"] / n_sites for r in reference],
            "k_",
            ms=14,
            label="Kaufman exact",
        )
    axes[2].set_ylabel("ln Z per spin")
    for ax in axes:
        ax.set_xlabel("temperature T")
        ax.axvline(report["model_trained_at"]["T"], color="black", ls="--", lw=1)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    figure.suptitle(f"Validation of the learned energy, L={report['L']}")
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
