"""Retrain q variationally against the exact Ising energy and check KL(q || p).

Usage::

    python benchmarks/variational.py [--L 4] [--steps N] [--z2 | --no-z2] \
        [--output FILE.json]

Starts from a freshly initialised autoregressive GRU (or, with
``--warm-start-L``, from one first trained at a smaller size and then moved
to L) and minimises the variational free energy F_q = E_q[E + T log q] / N of
the L x L Ising model at T = 2.269 with :func:`dcl_prob.variational.anneal`.
For L <= 4 it computes KL(q || p) exactly by enumerating all states and
passes when KL < 1e-3. For every L it compares F_q with Kaufman's exact free
energy of the torus; the relative error is (F_q - F) / |F|, which is never
negative up to sampling error because F_q is an upper bound. Prints a JSON
summary with the settings, the command, the results and the wall time.
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
from dcl_prob.variational import anneal, exact_kl_divergence

TEMPERATURE = 2.269
MAX_KL = 1e-3
MAX_ENUMERATION_L = 4


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=4, help="linear lattice size")
    parser.add_argument(
        "--temperature",
        type=float,
        default=TEMPERATURE,
        help="target temperature (energy units)",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--hidden-size", type=int, default=64, help="GRU width of q")
    parser.add_argument("--steps", type=int, default=3000, help="optimisation steps")
    parser.add_argument(
        "--batch-size", type=int, default=512, help="samples of q per step"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=3e-3, help="peak Adam learning rate"
    )
    parser.add_argument(
        "--z2",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use the spin-flip symmetrised q",
    )
    parser.add_argument(
        "--eval-size", type=int, default=65536, help="fresh samples for F_q"
    )
    parser.add_argument(
        "--position",
        choices=["site", "boundary"],
        default="site",
        help="position inputs of q (boundary is needed for --warm-start-L)",
    )
    parser.add_argument(
        "--warm-start-L",
        type=int,
        default=None,
        help="first train q at this smaller size, then move it to L",
    )
    parser.add_argument(
        "--warm-start-steps", type=int, default=2000, help="steps at --warm-start-L"
    )
    parser.add_argument(
        "--progress", action="store_true", help="show progress bars on stderr"
    )
    parser.add_argument("--output", help="also write the JSON summary to this file")
    parser.add_argument(
        "--save-q", help="write the trained network to this .eqx file (Equinox format)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_arguments()
    key_init, key_train = jax.random.split(jax.random.key(args.seed))
    if args.warm_start_L is not None and args.position != "boundary":
        raise SystemExit("--warm-start-L needs --position boundary")
    net = AutoregressiveGRU(
        args.warm_start_L or args.L,
        args.hidden_size,
        key=key_init,
        position_encoding=args.position,
    )
    start = time.perf_counter()
    warm_start = None
    if args.warm_start_L is not None:
        key_warm, key_train = jax.random.split(key_train)
        small = anneal(
            net,
            IsingModel().energy,
            args.temperature,
            key=key_warm,
            n_steps=args.warm_start_steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            z2=args.z2,
            eval_size=min(args.eval_size, 16384),
            progress=args.progress,
        )
        exact_small = float(kaufman(args.warm_start_L, args.temperature).free_energy)
        warm_start = {
            "L": args.warm_start_L,
            "steps": args.warm_start_steps,
            "free_energy_q": small.free_energy,
            "free_energy_q_error": small.free_energy_error,
            "relative_error": (small.free_energy - exact_small) / abs(exact_small),
            "wall_seconds": round(time.perf_counter() - start, 1),
        }
        net = small.q_net.resized(args.L)
    result = anneal(
        net,
        IsingModel().energy,
        args.temperature,
        key=key_train,
        n_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        z2=args.z2,
        eval_size=args.eval_size,
        progress=args.progress,
    )
    anneal_seconds = time.perf_counter() - start
    if args.save_q:
        eqx.tree_serialise_leaves(args.save_q, result.q_net)

    exact = float(kaufman(args.L, args.temperature).free_energy)
    summary = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "settings": vars(args),
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__,
        "anneal_wall_seconds": round(anneal_seconds, 1),
        "warm_start": warm_start,
        "free_energy_q": result.free_energy,
        "free_energy_q_error": result.free_energy_error,
        "free_energy_kaufman": exact,
        "relative_error": (result.free_energy - exact) / abs(exact),
        "energy_q": result.energy,
        "energy_q_error": result.energy_error,
        "energy_kaufman": float(kaufman(args.L, args.temperature).energy),
        "entropy_q": result.entropy,
        "entropy_q_error": result.entropy_error,
    }
    passed = True
    if args.L <= MAX_ENUMERATION_L:
        kl = exact_kl_divergence(result.q_net, args.temperature, z2=args.z2)
        summary["kl_exact"] = kl
        summary["kl_target"] = MAX_KL
        passed = kl < MAX_KL
    summary["passed"] = passed

    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as file:
            file.write(text + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
