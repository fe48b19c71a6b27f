"""Simulation-based calibration of the pseudo-likelihood posterior of the Ising J.

Usage::

    python benchmarks/bayes_calibration.py [--quick] [--output FILE.json]

For each of ``--datasets`` data sets (default 60) the script draws a true
coupling ``J ~ Normal(0, 0.5)``, the prior that the posterior also uses,
simulates ``--configs`` decorrelated configurations of the 8 x 8 Ising model
with that ``J`` at the fixed temperature T = 3 (checkerboard Metropolis,
thinned by the measured autocorrelation time), and samples the posterior of
``J`` with the adjusted and the unadjusted pseudo-likelihood
(:func:`dcl_prob.bayes.posterior`). It reports how often the central 90%
posterior interval contains the true ``J``, with the binomial standard
error. The target for the adjusted posterior is 80-97%.

The prior keeps the data mostly paramagnetic: ``T_c = 2.269 |J|`` exceeds
T = 3 only for ``|J| > 1.32``, 0.8% of the prior mass, and the simulation of
such data is still valid because the Metropolis chains run on 8 x 8 only.
Because the Boltzmann weight depends only on ``J / T``, each data set is
simulated with ``J = +-1`` at ``T / |J|``, so that the sampler compiles once.

A second table (``score_ratio``) gives, for ``J = 1`` at several
temperatures, the ratio ``J / H`` of the score variance to the curvature of
the log pseudo-likelihood, from 3200 configurations (800 with ``--quick``).
A ratio above 1 means that the unadjusted posterior is too narrow, below 1
too wide.

``--quick`` runs 8 data sets of 300 configurations with short chains, to
check that the script works. Writes JSON with the command, date and machine.
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings

import jax
import numpy as np

from dcl_prob.bayes import posterior
from dcl_prob.bayes_adjust import curvature_adjustment
from dcl_prob.bayes_families import coupling_family
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.montecarlo import simulate

L = 8
TEMPERATURE = 3.0
PRIOR_SCALE = 0.5
INTERVAL = 0.9
TARGET = (0.80, 0.97)
RATIO_TEMPERATURES = (6.0, 4.0, 3.0, 2.6, 2.269, 2.0)
# Below this |J| the data are simulated with J itself, not at T / |J|.
MIN_SCALED_J = 1e-3


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--datasets", type=int, default=None, help="data sets")
    parser.add_argument("--configs", type=int, default=None, help="configs per set")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--output", default=None, help="JSON output file")
    args = parser.parse_args()
    if args.datasets is None:
        args.datasets = 8 if args.quick else 60
    if args.configs is None:
        args.configs = 300 if args.quick else 500
    args.warmup, args.samples = (200, 300) if args.quick else (500, 1000)
    args.ratio_configs = 800 if args.quick else 3200
    return args


def simulate_ising(J: float, n_configs: int, key, temperature=TEMPERATURE):
    """Simulate ``J`` at ``temperature`` as ``J = +-1`` at ``temperature / |J|``."""
    if abs(J) < MIN_SCALED_J:
        model, run_temperature = IsingModel(J=float(J)), temperature
    else:
        model, run_temperature = IsingModel(J=float(np.sign(J))), temperature / abs(J)
    return simulate(
        model,
        L,
        run_temperature,
        n_configs,
        key=key,
        sampler="checkerboard",
        n_chains=20,
        burn_in=300,
        pilot_steps=512,
        progress=False,
    )


def interval_row(idata, J_true: float) -> dict:
    draws = idata.posterior["J"].values.ravel()
    low, high = np.quantile(draws, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
    return {
        "mean": float(draws.mean()),
        "sd": float(draws.std()),
        "low": float(low),
        "high": float(high),
        "covered": bool(low <= J_true <= high),
        "rank": float(np.mean(draws < J_true)),
    }


def coverage(rows: list[dict], name: str) -> dict:
    hits = np.array([row[name]["covered"] for row in rows], dtype=float)
    rate = float(hits.mean())
    return {
        "coverage": rate,
        "coverage_err": math.sqrt(rate * (1 - rate) / len(hits)),
        "mean_sd": float(np.mean([row[name]["sd"] for row in rows])),
    }


def score_ratios(n_configs: int, key) -> list[dict]:
    family = coupling_family("J", L=L)
    rows = []
    for index, temperature in enumerate(RATIO_TEMPERATURES):
        data = simulate_ising(
            1.0, n_configs, jax.random.fold_in(key, index), temperature
        )
        adjustment = curvature_adjustment(
            family, family.pl_features(data.spins), temperature, prior_scale=10.0
        )
        ratio = adjustment.score_covariance[0, 0] / adjustment.hessian[0, 0]
        rows.append(
            {
                "T": temperature,
                "J_over_H": float(ratio),
                # The relative standard error of a variance from n values.
                "J_over_H_err": float(ratio * math.sqrt(2.0 / n_configs)),
                "theta_hat": float(adjustment.mode[0]),
            }
        )
        print(f"T={temperature:<6g} J/H={ratio:.3f}", flush=True)
    return rows


def main() -> None:
    args = parse_arguments()
    start = time.perf_counter()
    key = jax.random.key(args.seed)
    key_truth, key_data, key_fit, key_ratio = jax.random.split(key, 4)
    truths = PRIOR_SCALE * np.asarray(
        jax.random.normal(key_truth, (args.datasets,)), np.float64
    )
    rows = []
    for index, J_true in enumerate(truths):
        data = simulate_ising(J_true, args.configs, jax.random.fold_in(key_data, index))
        row = {"J_true": float(J_true), "thin": data.thin}
        for adjusted in (True, False):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                idata = posterior(
                    data.spins,
                    TEMPERATURE,
                    "J",
                    key=jax.random.fold_in(key_fit, index),
                    adjusted=adjusted,
                    prior_scale=PRIOR_SCALE,
                    num_warmup=args.warmup,
                    num_samples=args.samples,
                    num_chains=4,
                )
            name = "adjusted" if adjusted else "unadjusted"
            row[name] = interval_row(idata, J_true)
            row[name]["warnings"] = [str(w.message) for w in caught]
            if adjusted:
                matrix = idata.constant_data["pl_adjustment_matrix"].values
                row["adjustment_C"] = float(matrix[0, 0])
        rows.append(row)
        print(
            f"{index + 1:>3}/{args.datasets} J={J_true:+.3f} "
            f"adjusted [{row['adjusted']['low']:+.3f}, {row['adjusted']['high']:+.3f}]"
            f" unadjusted [{row['unadjusted']['low']:+.3f}, "
            f"{row['unadjusted']['high']:+.3f}] C={row['adjustment_C']:.3f}",
            flush=True,
        )

    summary = {name: coverage(rows, name) for name in ("adjusted", "unadjusted")}
    adjusted_rate = summary["adjusted"]["coverage"]
    report = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, JAX {jax.__version__} "
        f"({jax.default_backend()})",
        "settings": {
            "L": L,
            "T": TEMPERATURE,
            "prior": f"J ~ Normal(0, {PRIOR_SCALE})",
            "interval": INTERVAL,
            **vars(args),
        },
        "summary": summary,
        "adjusted_target": list(TARGET),
        "adjusted_in_target": TARGET[0] <= adjusted_rate <= TARGET[1],
        "score_ratio": score_ratios(args.ratio_configs, key_ratio),
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    for name, values in summary.items():
        print(
            f"{name:>10}: {INTERVAL:.0%} interval coverage "
            f"{values['coverage']:.3f} ± {values['coverage_err']:.3f}, "
            f"mean posterior sd {values['mean_sd']:.4f}"
        )
    print(f"adjusted coverage in {TARGET}: {report['adjusted_in_target']}")
    print(f"wall time {report['wall_time_s']} s")
    if args.output:
        with open(args.output, "w") as file:
            json.dump(report, file, indent=2)
            file.write("\n")


if __name__ == "__main__":
    main()
