"""Check ln Z from importance sampling and tempered SMC against Kaufman.

Usage::

    python benchmarks/log_z.py [--seed N] [--output FILE.json]

Draws decorrelated Wolff samples of the 8 x 8 Ising model at T = 2.269,
trains the autoregressive q on them by maximum likelihood, and estimates
ln Z of the true Ising energy at that temperature twice: by importance
sampling from q and by tempered SMC from uniform spins. Each estimate passes
when it is within 3 of its standard errors and 1e-3 relative of Kaufman's
exact ln Z of the torus. Prints a JSON summary with the settings, estimates,
errors, effective sample sizes and wall times.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import jax

from dcl_prob.exact import kaufman
from dcl_prob.fit import FitConfig, train_q
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.montecarlo import simulate
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.samplers.neural import importance_sampling
from dcl_prob.samplers.smc import smc_log_z

L = 8
TEMPERATURE = 2.269
MAX_STANDARD_ERRORS = 3.0
MAX_RELATIVE_ERROR = 1e-3


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")

    parser.add_argument(
        "--n-data", type=int, default=20000, help="Monte Carlo samples to train q"
    )
    parser.add_argument("--hidden-size", type=int, default=64, help="GRU width of q")
    parser.add_argument(
        "--q-steps", type=int, default=1500, help="optimisation steps of q"
    )

    parser.add_argument(
        "--is-samples", type=int, default=2**18, help="importance samples from q"
    )

    parser.add_argument(
        "--smc-particles", type=int, default=2048, help="particles per SMC run"
    )
    parser.add_argument("--smc-runs", type=int, default=16, help="independent SMC runs")
    parser.add_argument(
        "--smc-sweeps",
        type=int,
        default=8,
        help="Metropolis sweeps per particle and tempering step",
    )
    parser.add_argument(
        "--smc-target-ess",
        type=float,
        default=0.5,
        help="effective sample size per tempering step, as a fraction",
    )

    parser.add_argument("--output", default=None, help="also write the JSON here")
    return parser.parse_args()


def check_estimate(log_z: float, log_z_err: float, exact: float) -> dict:
    """Deviation from the exact ln Z and whether it meets both criteria."""
    deviation = log_z - exact
    n_sigma = abs(deviation) / log_z_err if log_z_err > 0 else math.inf
    relative = abs(deviation) / abs(exact)
    return {
        "log_z": log_z,
        "log_z_err": log_z_err,
        "deviation": deviation,
        "standard_errors": n_sigma,
        "relative_error": relative,
        "within_3_standard_errors": n_sigma <= MAX_STANDARD_ERRORS,
        "within_1e-3_relative": relative <= MAX_RELATIVE_ERROR,
    }


def main() -> int:
    args = parse_arguments()
    model = IsingModel()
    exact = float(kaufman(L, TEMPERATURE).log_z)
    key_data, key_init, key_train, key_is, key_smc = jax.random.split(
        jax.random.key(args.seed), 5
    )

    start = time.perf_counter()
    data = simulate(model, L, TEMPERATURE, args.n_data, key=key_data, progress=False)
    data_time = time.perf_counter() - start

    start = time.perf_counter()
    config = FitConfig(hidden_size=args.hidden_size, q_steps=args.q_steps)
    q_net = AutoregressiveGRU(L, config.hidden_size, key=key_init)
    q_net, history = train_q(
        q_net, jax.numpy.asarray(data.spins), config, key=key_train, progress=False
    )
    q = AutoregressiveSpins(q_net)
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    is_result = importance_sampling(
        q, model.energy, TEMPERATURE, args.is_samples, key=key_is
    )
    is_time = time.perf_counter() - start

    start = time.perf_counter()
    smc_result = smc_log_z(
        model.energy,
        L,
        TEMPERATURE,
        key=key_smc,
        n_particles=args.smc_particles,
        n_runs=args.smc_runs,
        n_sweeps=args.smc_sweeps,
        target_ess=args.smc_target_ess,
    )
    smc_time = time.perf_counter() - start

    importance = check_estimate(is_result.log_z, is_result.log_z_err, exact)
    importance.update(
        ess=is_result.ess,
        ess_fraction=is_result.ess_fraction,
        n_samples=is_result.n_samples,
        energy=is_result.energy,
        energy_err=is_result.energy_err,
        wall_time_s=round(is_time, 1),
    )
    smc = check_estimate(smc_result.log_z, smc_result.log_z_err, exact)
    smc.update(
        log_z_runs_std=float(smc_result.log_z_runs.std(ddof=1)),
        n_steps_mean=float(smc_result.n_steps.mean()),
        acceptance_rate=float(smc_result.acceptance_rate.mean()),
        energy=smc_result.energy,
        energy_err=smc_result.energy_err,
        wall_time_s=round(smc_time, 1),
    )
    kaufman_energy = float(kaufman(L, TEMPERATURE).energy)
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, JAX {jax.__version__} "
        f"({jax.default_backend()})",
        "L": L,
        "T": TEMPERATURE,
        "kaufman_log_z": exact,
        "kaufman_energy_per_spin": kaufman_energy,
        "settings": vars(args),
        "data": {
            "sampler": data.sampler,
            "n_samples": int(data.spins.shape[0]),
            "thin": data.thin,
            "tau_int": data.tau_int,
            "wall_time_s": round(data_time, 1),
        },
        "q_training": {
            "final_nll_per_spin": history[-1]["loss"],
            "wall_time_s": round(train_time, 1),
        },
        "importance_sampling": importance,
        "smc": smc,
        "passed": all(
            result[criterion]
            for result in (importance, smc)
            for criterion in ("within_3_standard_errors", "within_1e-3_relative")
        ),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as file:
            file.write(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
