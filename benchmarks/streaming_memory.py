"""Peak memory of a streamed fit against the size of the HDF5 data set.

Each fit runs in its own process under an enforced memory cap,
``resource.setrlimit(RLIMIT_DATA)``. Since Linux 4.7 this limit counts every
private writable mapping of the process, anonymous ``mmap`` included, but not
the kernel's page cache of the file. The process reports its peak resident
set size (``ru_maxrss``). The largest data set is three times the cap.
As a check that the cap is real, the same largest file is also loaded into
memory with :func:`dcl_prob.data.load_dataset` under the cap, which must fail.

The data are uniformly random spins written block by block, so writing them
needs little memory either. They need ``sum(--sizes) * --cap-mib`` MiB of disk
in ``--directory``, removed at the end.

Usage::

    python benchmarks/streaming_memory.py --cap-mib 1200 --sizes 0.5 1 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIB = 1 << 20


def write_random_data(path: Path, n: int, L: int, seed: int) -> None:
    """Write ``n`` random -1/+1 configurations ``(L, L)``, 64 MiB at a time."""
    import h5py

    rng = np.random.default_rng(seed)
    rows = max(1, (64 * MIB) // (L * L))
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("spins", shape=(n, L, L), dtype=np.int8)
        for start in range(0, n, rows):
            count = min(rows, n - start)
            bits = np.frombuffer(rng.bytes(count * L * L), np.uint8) & 1
            dataset[start : start + count] = (2 * bits.astype(np.int8) - 1).reshape(
                count, L, L
            )
        file.attrs.update({"model": "ising", "temperature": 3.0, "L": L})


def run_worker(args) -> dict:
    """Run in the worker process: fit under the cap and report the peak memory."""
    cap = args.cap_mib * MIB
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    start = time.perf_counter()
    outcome = "completed"
    try:
        import jax

        from dcl_prob.data import load_dataset
        from dcl_prob.fit import FitConfig, fit
        from dcl_prob.streaming import StreamedSpins

        config = FitConfig(
            hidden_size=16,
            q_steps=100,
            energy_steps=100,
            batch_size=256,
            n_q_samples=1024,
            validation_fraction=args.validation_fraction,
        )
        if args.mode == "stream":
            with StreamedSpins(args.worker) as spins:
                result = fit(spins, 3.0, key=jax.random.key(0), config=config)
        else:
            data = load_dataset(args.worker)
            result = fit(data.spins, 3.0, key=jax.random.key(0), config=config)
        outcome = (
            f"completed, held-out NLL/spin {result.metrics['valid_nll_per_spin']:.4f}"
        )
    except MemoryError:
        outcome = "MemoryError"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "outcome": outcome,
        "peak_rss_mib": peak / MIB,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-mib", type=int, default=1200, help="RLIMIT_DATA")
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[0.5, 1.0, 3.0], help="data / cap"
    )
    parser.add_argument("--L", type=int, default=8, help="lattice size")
    parser.add_argument("--validation-fraction", type=float, default=0.002)
    parser.add_argument("--directory", default=None, help="where to write the data")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args)))
        return

    repository = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "CI": "1", "JAX_PLATFORMS": "cpu"}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(repository), os.environ.get("PYTHONPATH")])
    )
    rows = []
    with tempfile.TemporaryDirectory(dir=args.directory) as directory:
        runs = [(size, "stream") for size in args.sizes]
        runs.append((max(args.sizes), "load"))
        for size, mode in runs:
            path = Path(directory) / f"data_{size:g}.h5"
            n = int(size * args.cap_mib * MIB) // (args.L * args.L)
            if not path.exists():
                write_random_data(path, n, args.L, seed=0)
            command = [sys.executable, __file__, "--worker", str(path)]
            command += [f"--cap-mib={args.cap_mib}", f"--mode={mode}"]
            command += [f"--validation-fraction={args.validation_fraction}"]
            completed = subprocess.run(
                command, env=environment, capture_output=True, text=True
            )
            lines = completed.stdout.strip().splitlines()
            if completed.returncode == 0 and lines:
                row = json.loads(lines[-1])
            else:  # killed or crashed outside Python's MemoryError
                message = completed.stderr.strip().splitlines()[-1:]
                row = {"outcome": f"failed: {message}", "peak_rss_mib": float("nan")}
                row["seconds"] = float("nan")
            rows.append(
                {"mode": mode, "n": n, "file_mib": path.stat().st_size / MIB, **row}
            )
            if mode == "load":
                path.unlink()

    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPU cores, date "
        f"{time.strftime('%Y-%m-%d')}; RLIMIT_DATA cap {args.cap_mib} MiB, "
        f"L={args.L}\n"
    )
    columns = "mode | configurations | file (MiB) | file / cap | peak RSS (MiB)"
    print(f"| {columns} | time (s) | outcome |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['mode']} | {row['n']} | {row['file_mib']:.0f} | "
            f"{row['file_mib'] / args.cap_mib:.2f} | {row['peak_rss_mib']:.0f} | "
            f"{row['seconds']:.0f} | {row['outcome']} |"
        )


if __name__ == "__main__":
    main()
