"""Cost per Monte Carlo sweep and per training step against L and chain count,
and the peak memory of a fit at L = 64."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import equinox as eqx
import jax

from benchmarks.speed import _our_gru, _train_step, chain_runner, random_spins
from benchmarks.timing import best_time
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.objectives import pseudo_likelihood_loss
from dcl_prob.samplers import checkerboard, tile_local

__all__ = ["SETTINGS", "run_scaling"]

TEMPERATURE = 2.5

SETTINGS = {
    "quick": {
        "sweep_sizes": [8, 16, 32, 64],
        "chain_counts": [1, 16, 64],
        "sweep_chains": 16,
        "chain_L": 32,
        "site_updates": 2**19,
        "train_sizes": [8, 16, 32],
        "train_batch": 64,
        "memory": {"L": 32, "steps": 2, "n_samples": 256, "n_q_samples": 256},
    },
    "full": {
        "sweep_sizes": [8, 16, 32, 64, 128, 256],
        "chain_counts": [1, 4, 16, 64, 256],
        "sweep_chains": 16,
        "chain_L": 32,
        "site_updates": 2**22,
        "train_sizes": [8, 16, 32, 64, 128, 256],
        "train_batch": 64,
        "memory": {"L": 64, "steps": 10, "n_samples": 2048, "n_q_samples": None},
    },
}


def _sweep_seconds(L: int, n_chains: int, site_updates: int) -> dict:
    """Seconds per sweep of checkerboard Ising and of the tile-aware kernel."""
    n_sweeps = max(2, site_updates // (n_chains * L * L))
    spins = random_spins(jax.random.key(0), n_chains, L)

    model = IsingModel()
    states = jax.vmap(lambda s: checkerboard.init(s, model))(spins)
    run = chain_runner(
        checkerboard.build_kernel(model), n_chains, n_sweeps, TEMPERATURE
    )
    ising = best_time(run, states, jax.random.key(1)) / n_sweeps

    energy = ExtensiveEnergy(key=jax.random.key(0))
    local_sweeps = max(1, n_sweeps // 8)
    states = jax.vmap(lambda s: tile_local.init(s, energy))(spins)
    run = chain_runner(
        tile_local.build_kernel(energy, L), n_chains, local_sweeps, 1.0 / TEMPERATURE
    )
    local = best_time(run, states, jax.random.key(1)) / local_sweeps
    n_updates = n_chains * L * L
    return {
        "L": L,
        "chains": n_chains,
        "checkerboard_s_per_sweep": ising,
        "checkerboard_ns_per_site": 1e9 * ising / n_updates,
        "tile_local_s_per_sweep": local,
        "tile_local_ns_per_site": 1e9 * local / n_updates,
    }


def _train_seconds(L: int, batch_size: int) -> dict:
    """Seconds per Adam step of the GRU likelihood and of the energy network's
    pseudo-likelihood on a batch of random configurations."""
    batch = random_spins(jax.random.key(3), batch_size, L)
    repeats = 1 if L >= 128 else 3

    _, params, loss = _our_gru(L, 64)
    step, opt_state = _train_step(loss, params)
    gru = best_time(step, params, opt_state, batch, repeats=repeats)

    energy = ExtensiveEnergy(key=jax.random.key(0))
    params, static = eqx.partition(energy, eqx.is_inexact_array)

    def energy_loss(params, batch):
        return pseudo_likelihood_loss(eqx.combine(params, static), batch, 3.0)

    step, opt_state = _train_step(energy_loss, params)
    ednn = best_time(step, params, opt_state, batch, repeats=repeats)
    return {
        "L": L,
        "batch_size": batch_size,
        "gru_s_per_step": gru,
        "gru_us_per_site_and_configuration": 1e6 * gru / (batch_size * L * L),
        "energy_s_per_step": ednn,
        "energy_us_per_site_and_configuration": 1e6 * ednn / (batch_size * L * L),
    }


def fit_peak_memory(L, steps, n_samples, n_q_samples) -> dict:
    """Run a short fit in a child process and return its peak resident memory."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.fit_memory",
        "--L",
        str(L),
        "--steps",
        str(steps),
        "--samples",
        str(n_samples),
    ]
    if n_q_samples is not None:
        command += ["--q-samples", str(n_q_samples)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {completed.returncode}:\n"
            f"{completed.stderr[-2000:]}"
        )
    child = json.loads(completed.stdout.strip().splitlines()[-1])
    # ru_maxrss of the children is in KiB on Linux: the largest child so far,
    # which is this one because no other child runs longer or larger here.
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    child["children_max_rss_mib"] = children / 1024
    child["command"] = " ".join(["python"] + command[1:])
    return child


def run_scaling(mode: str, log) -> dict:
    """Measure every scaling series with the settings of ``mode``."""
    settings = SETTINGS[mode]
    sweeps_vs_L = []
    for L in settings["sweep_sizes"]:
        log(f"scaling: sweep cost at L={L}")
        sweeps_vs_L.append(
            _sweep_seconds(L, settings["sweep_chains"], settings["site_updates"])
        )
    sweeps_vs_chains = []
    for n_chains in settings["chain_counts"]:
        log(f"scaling: sweep cost with {n_chains} chains")
        sweeps_vs_chains.append(
            _sweep_seconds(settings["chain_L"], n_chains, settings["site_updates"])
        )
    training = []
    for L in settings["train_sizes"]:
        log(f"scaling: training step at L={L}")
        training.append(_train_seconds(L, settings["train_batch"]))
    log(f"scaling: peak memory of a fit at L={settings['memory']['L']}")
    memory = fit_peak_memory(**settings["memory"])
    return {
        "settings": settings,
        "sweeps_vs_L": sweeps_vs_L,
        "sweeps_vs_chains": sweeps_vs_chains,
        "training_vs_L": training,
        "fit_memory": memory,
    }
