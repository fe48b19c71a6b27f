"""Run one short fit and print its peak resident memory as JSON.

Started in a child process by :func:`benchmarks.scaling.fit_peak_memory`, so
that the peak belongs to the fit alone. The configurations are uniformly
random spins: the memory of a fit depends on the shapes, not on the data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time

import jax
import numpy as np

from dcl_prob.fit import FitConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=64, help="lattice size")
    parser.add_argument("--steps", type=int, default=10, help="steps of each fit phase")
    parser.add_argument(
        "--samples", type=int, default=2048, help="training configurations"
    )
    parser.add_argument(
        "--q-samples",
        type=int,
        default=None,
        help="size of the pool of q samples (default: FitConfig's)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    spins = rng.choice(np.array([-1, 1], np.int8), size=(args.samples, args.L, args.L))
    options = {
        "q_steps": args.steps,
        "energy_steps": args.steps,
        "chunk_size": args.steps,
    }
    if args.q_samples is not None:
        options["n_q_samples"] = args.q_samples
    config = dataclasses.replace(FitConfig(), **options)
    start = time.perf_counter()
    fit(spins, 3.0, key=jax.random.key(0), config=config, progress=False)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        "L": args.L,
        "n_samples": args.samples,
        "steps_per_phase": args.steps,
        "n_q_samples": config.n_q_samples,
        "batch_size": config.batch_size,
        "hidden_size": config.hidden_size,
        "seconds": seconds,
        "peak_rss_mib": peak_kib / 1024,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
