"""Fit steps and Monte Carlo sweeps per second against the number of devices.

Each device count runs in its own process, because XLA reads the number of
forced CPU devices (``--xla_force_host_platform_device_count``) once, when JAX
starts. The fit is timed from the second chunk of each phase on, so that
compilation is left out. Each call of the sampler compiles its loop again, so
the sweeps are timed as the difference between two runs of different length
after a warm-up run, with JAX's persistent compilation cache switched on.

On a CPU, forced devices share the same cores, so this measures the overhead
of splitting the work, not a speed-up. With ``--platform gpu`` the listed
counts are taken from the GPUs present.

Usage::

    python benchmarks/sharding_throughput.py --devices 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(args) -> dict:
    """Run in the worker process: time fit chunks and sweeps on all devices."""
    import jax
    import numpy as np

    from dcl_prob import sharding
    from dcl_prob.fit import FitConfig, fit
    from dcl_prob.nn.ednn import ExtensiveEnergy
    from dcl_prob.transfer import run_tile_chains

    cache = tempfile.mkdtemp(prefix="dcl_jax_cache_")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    devices = jax.devices()[: args.worker]
    assert len(devices) == args.worker, jax.devices()
    rng = np.random.default_rng(0)
    spins = np.where(rng.random((4096, args.L, args.L)) < 0.5, 1, -1).astype(np.int8)
    config = FitConfig(
        hidden_size=args.hidden_size,
        q_steps=args.chunks * args.chunk_size,
        energy_steps=args.chunks * args.chunk_size,
        batch_size=args.batch_size,
        n_q_samples=1024,
        chunk_size=args.chunk_size,
        validation_fraction=0.0,
    )
    times: dict[str, list[float]] = {"q": [], "energy": []}

    class Timer:
        def save(self, phase, step, model, opt_state, *, last):
            jax.block_until_ready(model)
            times[phase].append(time.perf_counter())

        def restore(self, phase, model, opt_state):
            times[phase].append(time.perf_counter())
            return 0, model, opt_state

    energy = ExtensiveEnergy(key=jax.random.key(1))
    temperatures = np.array([2.0, 3.0])

    def sweeps(n_sweeps):
        start = time.perf_counter()
        run_tile_chains(
            energy,
            args.L,
            temperatures,
            key=jax.random.key(2),
            n_chains=args.chains // 2,
            n_sweeps=n_sweeps,
            burn_in=0,
            description="benchmark",
            progress=False,
        )
        return time.perf_counter() - start

    with sharding.use_devices(devices):
        fit(spins, 3.0, key=jax.random.key(0), config=config, checkpoints=Timer())
        sweeps(args.sweeps)  # compiles and fills the cache
        short = sweeps(args.sweeps)
        long = sweeps(3 * args.sweeps)
    shutil.rmtree(cache, ignore_errors=True)
    result = {"devices": len(devices), "platform": devices[0].platform}
    for phase, stamps in times.items():
        # stamps[0] is the start, stamps[1] the end of the compiled chunk.
        steady = np.diff(stamps[1:])
        result[f"{phase}_steps_per_s"] = args.chunk_size / float(np.median(steady))
    result["sweeps_per_s"] = 2 * args.sweeps / (long - short)
    result["chain_sweeps_per_s"] = result["sweeps_per_s"] * args.chains
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--platform", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--L", type=int, default=16, help="lattice size")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=4, help="chunks per phase")
    parser.add_argument("--chains", type=int, default=128, help="chains in all")
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args)))
        return

    repository = Path(__file__).resolve().parents[1]
    rows = []
    for count in args.devices:
        environment = {**os.environ, "CI": "1", "JAX_PLATFORMS": args.platform}
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(repository), os.environ.get("PYTHONPATH")])
        )
        if args.platform == "cpu":
            environment["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
        command = [sys.executable, __file__, "--worker", str(count)]
        command += [
            f"--L={args.L}",
            f"--batch-size={args.batch_size}",
            f"--hidden-size={args.hidden_size}",
            f"--chunk-size={args.chunk_size}",
            f"--chunks={args.chunks}",
            f"--chains={args.chains}",
            f"--sweeps={args.sweeps}",
        ]
        completed = subprocess.run(
            command, env=environment, capture_output=True, text=True, check=True
        )
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))

    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPU cores, "
        f"date {time.strftime('%Y-%m-%d')}; L={args.L}, batch {args.batch_size}, "
        f"hidden {args.hidden_size}, {args.chains} chains\n"
    )
    print("| devices | q steps/s | E steps/s | sweeps/s | chain sweeps/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['devices']} ({row['platform']}) | {row['q_steps_per_s']:.2f} "
            f"| {row['energy_steps_per_s']:.2f} | {row['sweeps_per_s']:.1f} "
            f"| {row['chain_sweeps_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
