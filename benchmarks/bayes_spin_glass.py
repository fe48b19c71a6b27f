"""Posterior of the 128 bonds of one 8 x 8 spin glass from 10^4 samples at T = 2.

Usage::

    python benchmarks/bayes_spin_glass.py [--quick] [--output FILE.json]

The instance is ``EdwardsAndersonModel.random(8, distribution="gaussian",
seed=0)``. Parallel tempering (the model's default sampler) draws 10 000
configurations at T = 2, thinned by the measured autocorrelation time. The
posterior of every bond under a Normal(0, 1) prior (the distribution the bonds
were drawn from) is sampled by NUTS with the adjusted pseudo-likelihood of
:func:`dcl_prob.bayes.posterior`. The script reports the correlation of the
posterior means with the true bonds (target > 0.9) and the share of bonds
inside their central 90% interval (target >= 0.8), together with the RMS of
``(mean - true) / sd``. ``--quick`` uses 2000 configurations and short
chains. Writes JSON with the command, date and machine.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import arviz as az
import jax
import numpy as np

from dcl_prob.bayes import posterior
from dcl_prob.montecarlo import simulate
from dcl_prob.spin_glass import EdwardsAndersonModel

L = 8
TEMPERATURE = 2.0
INTERVAL = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--output", default=None, help="JSON output file")
    args = parser.parse_args()
    n_configs, warmup, samples = (2000, 200, 300) if args.quick else (10000, 500, 1000)

    start = time.perf_counter()
    model = EdwardsAndersonModel.random(L, distribution="gaussian", seed=0)
    key_data, key_posterior = jax.random.split(jax.random.key(args.seed))
    data = simulate(model, L, TEMPERATURE, n_configs, key=key_data, progress=False)
    simulated = time.perf_counter()
    idata = posterior(
        data.spins,
        TEMPERATURE,
        "spin-glass",
        key=key_posterior,
        prior_scale=1.0,
        num_warmup=warmup,
        num_samples=samples,
        num_chains=2,
    )
    sampled = time.perf_counter()

    draws = np.stack(
        [
            idata.posterior["J_right"].values.reshape(-1, L, L),
            idata.posterior["J_down"].values.reshape(-1, L, L),
        ],
        axis=1,
    )  # (draws, 2, L, L) in the bond layout of EdwardsAndersonModel
    true = np.asarray(model.bonds, np.float64)
    mean = draws.mean(axis=0)
    sd = draws.std(axis=0)
    low, high = np.quantile(draws, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    covered = (low <= true) & (true <= high)
    rhat = az.rhat(idata)
    rhat_max = max(float(np.nanmax(rhat[name].values)) for name in rhat.data_vars)
    report = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, JAX {jax.__version__}",
        "configurations": n_configs,
        "thin": data.thin,
        "correlation": float(np.corrcoef(mean.ravel(), true.ravel())[0, 1]),
        "coverage_90": float(covered.mean()),
        "rms_z": float(np.sqrt(np.mean(((mean - true) / sd) ** 2))),
        "mean_sd": float(sd.mean()),
        "rhat_max": rhat_max,
        "simulate_s": round(simulated - start, 1),
        "posterior_s": round(sampled - simulated, 1),
    }
    print(json.dumps(report, indent=2))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(report, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
