"""Reference energies of one 8 x 8 Edwards-Anderson spin glass by parallel tempering.

Usage::

    python benchmarks/spin_glass_reference.py [--force]
        [--output tests/data/spin_glass_8x8_seed0.json]

The instance is ``EdwardsAndersonModel.random(8, distribution="gaussian",
seed=0)``: N(0, 1) bonds on the periodic 8 x 8 lattice. Independent chains of
replica exchange run over a ladder of 11 temperatures from 1.0 to 4.0 that
contains 1.0, 2.0, 3.0 and 4.0, with one checkerboard heat-bath sweep of every
replica and one round of swaps per step. After a burn-in, the energy of every
ladder position is recorded after every step. For each of the four reference
temperatures the script writes the mean energy per spin and its ArviZ MCSE,
computed from the bulk ESS over all chains. It also writes the ESS, R-hat and
integrated autocorrelation time, and the heat capacity per spin with a
jackknife error over the chains.

The JSON output contains the bonds, the ladder, the mean swap acceptance rate
of each ladder pair, the rows and the provenance (command, seeds, sweeps,
date, code version, machine and wall time). The run fails, and writes
nothing, if an energy error bar is not below 0.2% of the energy or an R-hat
is not below 1.01.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import dcl_prob
from dcl_prob.diagnostics import chain_jackknife, summarize_traces
from dcl_prob.hamiltonians import EdwardsAndersonModel
from dcl_prob.samplers import checkerboard
from dcl_prob.samplers.replica_exchange import replica_exchange

L = 8
REFERENCE_TEMPERATURES = (1.0, 2.0, 3.0, 4.0)
LADDER = (1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.3, 2.6, 3.0, 3.5, 4.0)
MAX_RELATIVE_ERROR = 2e-3
MAX_RHAT = 1.01
DEFAULT_OUTPUT = Path(__file__).parents[1] / "tests/data/spin_glass_8x8_seed0.json"
# Steps per jitted call; the progress line is printed after each.
CHUNK_STEPS = 1000


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bond-seed", type=int, default=0, help="seed of the bonds")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the chains")
    parser.add_argument("--chains", type=int, default=64, help="independent chains")
    parser.add_argument(
        "--sweeps", type=int, default=40000, help="recorded steps per chain"
    )
    parser.add_argument(
        "--burn-in", type=int, default=4000, help="discarded steps per chain"
    )
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON output")
    parser.add_argument("--force", action="store_true", help="overwrite the output")
    return parser.parse_args()


def code_version() -> str:
    """Return the git commit of the working tree, marked ``+dirty`` if changed."""
    root = Path(__file__).parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"dcl_prob {dcl_prob.__version__} (no git checkout)"
    return commit + ("+dirty" if status.strip() else "")


def build_algorithm(model: EdwardsAndersonModel):
    return replica_exchange(
        checkerboard.build_kernel(model, "heat_bath"),
        partial(checkerboard.init, model=model),
        lambda state: state.energy,
        LADDER,
    )


@partial(jax.jit, static_argnames=("model", "n_steps", "record"))
def run_chunk(states, key, *, model, n_steps, record):
    """Advance every chain ``n_steps`` steps.

    Returns:
        ``(states, energies, swap_rate_sum)``: energies of shape
        ``(n_chains, n_steps, R)`` in ladder order when ``record``, else
        None, and the sum over the steps of the swap acceptance rate of each
        pair, shape ``(R - 1,)``, averaged over the chains.
    """
    algorithm = build_algorithm(model)
    n_chains = states.replica_ids.shape[0]

    def one_step(states, step_key):
        keys = jax.random.split(step_key, n_chains)
        states, info = jax.vmap(algorithm.step)(keys, states)
        energies = states.replicas.energy if record else None
        return states, (energies, jnp.mean(info.swap_acceptance_rate, axis=0))

    states, (energies, swap_rates) = jax.lax.scan(
        one_step, states, jax.random.split(key, n_steps)
    )
    if record:
        energies = jnp.swapaxes(energies, 0, 1)
    return states, energies, jnp.sum(swap_rates, axis=0)


def run_stage(states, key, n_steps, *, model, record, label):
    """Run ``n_steps`` steps in chunks; return states, energies and swap rates."""
    energies, swap_sum, done = [], 0.0, 0
    start = time.perf_counter()
    while done < n_steps:
        chunk = min(CHUNK_STEPS, n_steps - done)
        states, chunk_energies, chunk_swaps = run_chunk(
            states,
            jax.random.fold_in(key, done),
            model=model,
            n_steps=chunk,
            record=record,
        )
        if record:
            energies.append(np.asarray(chunk_energies))
        swap_sum = swap_sum + np.asarray(chunk_swaps, np.float64)
        done += chunk
        print(
            f"{label}: {done}/{n_steps} steps, {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    stored = np.concatenate(energies, axis=1) if record else None
    return states, stored, swap_sum / n_steps


def summarize(energies: np.ndarray, temperature: float) -> dict:
    """Energy and heat capacity per spin from total energies ``(chain, draw)``."""
    n_sites = L * L
    summary = summarize_traces({"e": energies / n_sites})["e"]

    def heat_capacity(total):
        return np.var(total) / (n_sites * temperature**2)

    c, c_err = chain_jackknife(heat_capacity, energies.astype(np.float64))
    return {
        "T": temperature,
        "e": summary["mean"],
        "e_err": summary["mcse"],
        "ess_bulk": summary["ess_bulk"],
        "ess_tail": summary["ess_tail"],
        "rhat": summary["rhat"],
        "tau_int": summary["tau_int"],
        "c": float(c),
        "c_err": float(c_err),
    }


def write_new_file(path: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file in its directory."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    try:
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def main() -> int:
    args = parse_arguments()
    output = Path(args.output)
    if output.exists() and not args.force:
        print(f"{output} already exists; pass --force to replace it", file=sys.stderr)
        return 2
    model = EdwardsAndersonModel.random(L, distribution="gaussian", seed=args.bond_seed)
    algorithm = build_algorithm(model)
    wall_start = time.perf_counter()

    init_key, burn_key, run_key = jax.random.split(jax.random.key(args.seed), 3)
    shape = (args.chains, len(LADDER), L, L)
    spins = jnp.where(jax.random.bernoulli(init_key, 0.5, shape), 1, -1)
    states = jax.vmap(algorithm.init)(spins.astype(jnp.int8))
    states, _, _ = run_stage(
        states, burn_key, args.burn_in, model=model, record=False, label="burn-in"
    )
    states, energies, swap_rates = run_stage(
        states, run_key, args.sweeps, model=model, record=True, label="production"
    )

    rows = [
        summarize(energies[:, :, LADDER.index(temperature)], temperature)
        for temperature in REFERENCE_TEMPERATURES
    ]
    wall_time = time.perf_counter() - wall_start
    failures = [
        f"T={row['T']}: e_err/|e| = {row['e_err'] / abs(row['e']):.2g}, "
        f"R-hat = {row['rhat']:.4f}"
        for row in rows
        if row["e_err"] >= MAX_RELATIVE_ERROR * abs(row["e"]) or row["rhat"] >= MAX_RHAT
    ]
    report = {
        "model": "spin-glass",
        "L": L,
        "bond_distribution": "gaussian",
        "bond_seed": args.bond_seed,
        "bonds": model.bonds.tolist(),
        "bonds_layout": "bonds[0, i, j] couples (i, j)-(i, j+1 mod L), "
        "bonds[1, i, j] couples (i, j)-(i+1 mod L, j)",
        "units": "energy and heat capacity per spin, k_B = 1",
        "ladder": list(LADDER),
        "swap_acceptance": [round(float(rate), 4) for rate in swap_rates],
        "rows": rows,
        "provenance": {
            "command": " ".join(["python", *sys.argv]),
            "script": "benchmarks/spin_glass_reference.py",
            "seed": args.seed,
            "bond_seed": args.bond_seed,
            "chains": args.chains,
            "sweeps": args.sweeps,
            "burn_in": args.burn_in,
            "sampler": "parallel tempering, one checkerboard heat-bath sweep of "
            "every replica and one round of swaps per step",
            "error_method": "ArviZ MCSE of the mean (bulk ESS) over all chains; "
            "heat capacity: jackknife over chains",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "code_version": code_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}, JAX {jax.__version__} "
            f"({jax.default_backend()}), NumPy {np.__version__}",
            "wall_time_s": round(wall_time, 1),
        },
    }
    text = json.dumps(report, indent=1)
    if failures:
        print(text)
        print("reference run failed its accuracy checks:", *failures, sep="\n  ")
        return 1
    write_new_file(output, text + "\n", overwrite=args.force)
    for row in rows:
        print(
            f"T={row['T']}: e = {row['e']:.5f} +- {row['e_err']:.5f}, "
            f"c = {row['c']:.4f} +- {row['c_err']:.4f}, ESS {row['ess_bulk']:.0f}, "
            f"R-hat {row['rhat']:.4f}"
        )
    print(f"wrote {output} in {wall_time:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
