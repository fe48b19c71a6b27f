"""Retrain q against a learned energy at a new size and compare with the transfer.

Usage::

    python benchmarks/variational_transfer.py MODEL_DIR TRANSFER.json \
        [--L 16] [--T 2.0 3.0] [--steps N] [--output FILE.json]

``MODEL_DIR`` is a model written by ``dcl fit`` and ``TRANSFER.json`` the
output of ``dcl transfer`` on that model, with rows at the requested L and T.
For each T the script moves the fitted q (boundary position inputs) to the
L x L lattice, minimises F_q against the learned energy with
:func:`dcl_prob.variational.anneal` (Z2-symmetrised q), and estimates the
learned energy per spin and ``<|m|>`` from fresh samples of q, both as plain
means over q and reweighted by ``exp(-E / T) / q``. Each estimate is compared
with the Monte Carlo value of the transfer row through
``z = (x_q - x_MC) / sqrt(err_q^2 + err_MC^2)``. Passes when every reweighted
estimate has ``|z| <= 2``. Prints a JSON summary.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import jax

from dcl_prob.model_io import load_model
from dcl_prob.variational import anneal

MAX_ABS_Z = 2.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model directory written by dcl fit")
    parser.add_argument("transfer", help="transfer.json of that model")
    parser.add_argument("--L", type=int, default=16, help="lattice size of q")
    parser.add_argument(
        "--T", type=float, nargs="+", default=[2.0, 3.0], help="temperatures"
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--steps", type=int, default=2000, help="steps per T")
    parser.add_argument(
        "--batch-size", type=int, default=256, help="samples of q per step"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="peak Adam learning rate"
    )
    parser.add_argument(
        "--eval-size", type=int, default=65536, help="fresh samples for estimates"
    )
    parser.add_argument("--output", help="also write the JSON summary to this file")
    return parser.parse_args()


def _transfer_row(rows: list, L: int, T: float) -> dict:
    for row in rows:
        if row["L"] == L and math.isclose(row["T"], T, rel_tol=1e-9):
            return row
    raise SystemExit(f"the transfer file has no row at L={L}, T={T}; run dcl transfer")


def _compare(value: float, error: float, reference: float, reference_error: float):
    z = (value - reference) / math.hypot(error, reference_error)
    return {"value": value, "error": error, "z": z}


def _row(T: float, result, reference: dict, seconds: float) -> dict:
    """Return the comparison of one annealed q with its Monte Carlo row."""
    reweighted = result.reweighted
    plain = {
        "e": (result.energy, result.energy_error),
        "abs_m": (result.abs_m, result.abs_m_error),
    }
    weighted = {
        "e": (reweighted["energy"], reweighted["energy_error"]),
        "abs_m": (reweighted["abs_m"], reweighted["abs_m_error"]),
    }
    references = {
        "e": (reference["e"], reference["e_err"]),
        "abs_m": (reference["abs_m"], reference["abs_m_err"]),
    }
    return {
        "T": T,
        "anneal_seconds": round(seconds, 1),
        "free_energy_q": result.free_energy,
        "free_energy_q_error": result.free_energy_error,
        "ess_fraction": reweighted["ess_fraction"],
        "monte_carlo": {
            "e": reference["e"],
            "e_err": reference["e_err"],
            "abs_m": reference["abs_m"],
            "abs_m_err": reference["abs_m_err"],
        },
        "q": {name: _compare(*plain[name], *references[name]) for name in plain},
        "reweighted": {
            name: _compare(*weighted[name], *references[name]) for name in weighted
        },
    }


def main() -> int:
    args = parse_arguments()
    loaded = load_model(args.model)
    with open(args.transfer) as file:
        transfer_rows = json.load(file)["rows"]
    q_start = loaded.q_net.resized(args.L)

    rows = []
    start = time.perf_counter()
    keys = jax.random.split(jax.random.key(args.seed), len(args.T))
    for T, key in zip(args.T, keys):
        reference = _transfer_row(transfer_rows, args.L, T)
        t0 = time.perf_counter()
        result = anneal(
            q_start,
            loaded.energy,
            T,
            key=key,
            n_steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            z2=True,
            eval_size=args.eval_size,
            progress=False,
        )
        rows.append(_row(T, result, reference, time.perf_counter() - t0))

    passed = all(
        abs(row["reweighted"][name]["z"]) <= MAX_ABS_Z
        for row in rows
        for name in ("e", "abs_m")
    )
    summary = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "settings": vars(args),
        "model_trained_at": {"T": loaded.temperature, "L": loaded.L},
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "max_abs_z": MAX_ABS_Z,
        "rows": rows,
        "passed": passed,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as file:
            file.write(text + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
