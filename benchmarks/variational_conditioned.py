"""Train one temperature-conditioned q over a range of T and compare F_q with Kaufman.

Usage::

    python benchmarks/variational_conditioned.py [--L 8] [--steps N] \
        [--output FILE.json] [--save-q FILE.eqx]

Builds an autoregressive GRU that takes the inverse temperature as an input
and trains it with :func:`dcl_prob.variational.anneal_range` against the
exact Ising energy over T in [1.5, 4.0]. At each of T = 1.5, 2.0, 2.269,
2.5, 3.0 and 4.0 it then estimates F_q from fresh samples of
``q.at_temperature(T)``, without retraining, and compares it with Kaufman's
exact free energy of the L x L torus. Passes when every relative error
(F_q - F) / |F| is below 2e-3. Prints a JSON summary.
"""

import argparse
import json
import os
import platform
import sys
import time

import equinox as eqx
import jax

from dcl_prob.exact import kaufman
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.rnn import AutoregressiveGRU
from dcl_prob.variational import anneal_range

EVAL_TEMPERATURES = (1.5, 2.0, 2.269, 2.5, 3.0, 4.0)
MAX_RELATIVE_ERROR = 2e-3


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=8, help="linear lattice size")
    parser.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=(1.5, 4.0),
        metavar=("T_LOW", "T_HIGH"),
        help="training temperature interval",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--hidden-size", type=int, default=64, help="GRU width of q")
    parser.add_argument("--steps", type=int, default=5000, help="optimisation steps")
    parser.add_argument(
        "--batch-size", type=int, default=512, help="samples of q per step"
    )
    parser.add_argument(
        "--groups", type=int, default=8, help="temperatures drawn per step"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=2e-3, help="peak Adam learning rate"
    )
    parser.add_argument(
        "--eval-size", type=int, default=32768, help="fresh samples per temperature"
    )
    parser.add_argument("--output", help="also write the JSON summary to this file")
    parser.add_argument("--save-q", help="write the trained network to this .eqx file")
    return parser.parse_args()


def main() -> int:
    args = parse_arguments()
    key_init, key_train = jax.random.split(jax.random.key(args.seed))
    net = AutoregressiveGRU(
        args.L,
        args.hidden_size,
        key=key_init,
        position_encoding="boundary",
        conditioned=True,
    )
    start = time.perf_counter()
    result = anneal_range(
        net,
        IsingModel().energy,
        tuple(args.range),
        key=key_train,
        n_steps=args.steps,
        batch_size=args.batch_size,
        n_groups=args.groups,
        learning_rate=args.learning_rate,
        z2=True,
        eval_temperatures=EVAL_TEMPERATURES,
        eval_size=args.eval_size,
        progress=False,
    )
    seconds = time.perf_counter() - start
    if args.save_q:
        eqx.tree_serialise_leaves(args.save_q, result.q_net)

    rows = []
    for T, estimate in result.estimates.items():
        exact = float(kaufman(args.L, T).free_energy)
        relative = (estimate["free_energy"] - exact) / abs(exact)
        rows.append(
            {
                "T": T,
                "free_energy_q": estimate["free_energy"],
                "free_energy_q_error": estimate["free_energy_error"],
                "free_energy_kaufman": exact,
                "relative_error": relative,
                "relative_error_se": estimate["free_energy_error"] / abs(exact),
                "energy_q": estimate["energy"],
                "energy_kaufman": float(kaufman(args.L, T).energy),
                "reweighted_free_energy": estimate["reweighted"]["free_energy"],
                "ess_fraction": estimate["reweighted"]["ess_fraction"],
            }
        )
    passed = all(row["relative_error"] < MAX_RELATIVE_ERROR for row in rows)
    summary = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "settings": vars(args),
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__,
        "train_and_eval_wall_seconds": round(seconds, 1),
        "target_relative_error": MAX_RELATIVE_ERROR,
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
