"""Sweeps per second of the project's samplers against generic paths and NetKet.

Usage::

    python benchmarks/sampler_speed.py [--L 32] [--chains 16] [--sweeps 200]

Prints the two sampler comparisons of ``python -m benchmarks`` (speed group)
as JSON, at one lattice size, each pair in one run on the same inputs:

1. The tile-aware local kernel on an energy network of the default
   architecture against the generic single-site ``blackjax.rmh`` path, which
   evaluates the whole energy network for every proposal.
2. Checkerboard Metropolis on the Ising model against NetKet's
   ``MetropolisLocal`` on the same log density ``-E(s) / T`` (NetKet samples
   ``|psi|^2``, so its model returns ``log psi = -E / (2 T)``). Skipped when
   NetKet is not installed (``pip install -e ".[bench]"``).

Times exclude compilation: every function runs once before it is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:
    # Run by path: make the ``benchmarks`` package importable from the
    # repository root, one directory up.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchmarks  # noqa: E402, F401  (sets NETKET_ENABLE_X64 before NetKet loads)
from benchmarks.machine import describe_machine, measure_limits  # noqa: E402
from benchmarks.speed import energy_network_pair, ising_pair  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=32, help="lattice size")
    parser.add_argument("--chains", type=int, default=16, help="chains")
    parser.add_argument("--sweeps", type=int, default=200, help="timed sweeps")
    args = parser.parse_args()

    limits = measure_limits(quick=True)
    report = {
        "command": "python benchmarks/sampler_speed.py "
        f"--L {args.L} --chains {args.chains} --sweeps {args.sweeps}",
        "machine": describe_machine(),
        "limits": limits,
        "energy_network": energy_network_pair(
            args.L,
            args.chains,
            args.sweeps,
            max(1, args.sweeps // 50),
            limits,
        ),
        "ising": ising_pair(
            args.L, args.chains, args.sweeps, max(1, args.sweeps // 10), limits
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
