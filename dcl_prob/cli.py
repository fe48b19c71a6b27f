"""The ``dcl`` command: simulate, fit, transfer, validate, anneal, couplings, demo."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from dcl_prob.cli_couplings import add_couplings_parser, run_couplings
from dcl_prob.cli_types import positive_float, positive_int

__all__ = ["build_parser", "main"]

logger = logging.getLogger("dcl_prob")


class _FORMATTER(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default unless it is None, False or already described."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False
        if hidden or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


def _lattice_size(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"L={value} is invalid: it must be >= 2")
    return value


def _is_primary_process() -> bool:
    """Return whether this process writes the outputs: process 0 of a
    multi-process run (see dcl_prob.sharding.DISTRIBUTED_ENV), or the only one."""
    from dcl_prob import sharding

    return sharding.is_primary_process()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dcl_prob")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``dcl``.

    Returns:
        An :class:`argparse.ArgumentParser` with the global options and one
        required subcommand.
    """
    parser = argparse.ArgumentParser(
        prog="dcl",
        formatter_class=_FORMATTER,
        description=(
            "Distribution-consistent learning of lattice spin models: learn a "
            "normalized model q(s) and an energy E(s) from configurations at one "
            "temperature, and predict the physics at other temperatures and sizes."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_package_version()}"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser(
        "simulate", formatter_class=_FORMATTER, help="make Monte Carlo data (HDF5)"
    )
    sim.add_argument(
        "--model",
        choices=["ising", "ising-nnn", "potts", "clock", "spin-glass"],
        default="ising",
        help="lattice model",
    )
    sim.add_argument("--L", type=_lattice_size, default=16, help="lattice size")
    sim.add_argument("--T", type=positive_float, default=3.0, help="temperature")
    sim.add_argument("--J", type=float, default=1.0, help="nearest-neighbour coupling")
    sim.add_argument(
        "--h", type=float, default=0.0, help="external field (ising, ising-nnn)"
    )
    sim.add_argument(
        "--J2", type=float, default=0.0, help="diagonal coupling (ising-nnn)"
    )
    sim.add_argument(
        "--q", type=int, default=3, help="number of states (potts, clock), >= 2"
    )
    sim.add_argument(
        "--bond-distribution",
        choices=["gaussian", "pm"],
        default="gaussian",
        help="spin-glass bonds: standard normal or +-1",
    )
    sim.add_argument(
        "--bond-seed", type=int, default=0, help="seed of the spin-glass bonds"
    )
    sim.add_argument(
        "--samples", type=positive_int, default=20000, help="configurations to store"
    )
    sim.add_argument(
        "--sampler",
        choices=[
            "wolff",
            "checkerboard",
            "heat-bath",
            "swendsen-wang",
            "parallel-tempering",
        ],
        default=None,
        help="Monte Carlo update (default: wolff for ising, swendsen-wang for "
        "potts, parallel-tempering for spin-glass, heat-bath otherwise)",
    )
    sim.add_argument(
        "--temperatures",
        type=positive_float,
        nargs="+",
        default=None,
        help="ladder of parallel tempering, including --T (default: 16 "
        "temperatures from T to 4 T)",
    )
    sim.add_argument(
        "--chains", type=positive_int, default=64, help="independent chains"
    )
    sim.add_argument("--seed", type=int, default=0, help="PRNG seed")
    sim.add_argument("-o", "--output", required=True, help="output HDF5 file")
    sim.add_argument("--force", action="store_true", help="overwrite the output")

    fit_parser = commands.add_parser(
        "fit", formatter_class=_FORMATTER, help="learn q and E from data"
    )
    fit_parser.add_argument("data", help="HDF5 or NPZ data set")
    fit_parser.add_argument("-o", "--output", required=True, help="model directory")
    fit_parser.add_argument(
        "--encoding",
        choices=["pm1", "01"],
        default=None,
        help="spin encoding of the data (default: the file's, else -1/+1)",
    )
    fit_parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    fit_parser.add_argument(
        "--hidden-size", type=positive_int, default=64, help="GRU hidden units"
    )
    fit_parser.add_argument(
        "--q-position",
        choices=["boundary", "site"],
        default="boundary",
        help="position input of q: 'boundary' works at every lattice size, 'site' "
        "learns one vector per site of the training size",
    )
    fit_parser.add_argument(
        "--q-steps", type=positive_int, default=1500, help="likelihood steps for q"
    )
    fit_parser.add_argument(
        "--energy-steps",
        type=positive_int,
        default=1500,
        help="consistency steps for E",
    )
    fit_parser.add_argument(
        "--batch-size", type=positive_int, default=256, help="configurations per step"
    )
    fit_parser.add_argument(
        "--q-learning-rate",
        type=positive_float,
        default=3e-3,
        help="peak Adam learning rate of q",
    )
    fit_parser.add_argument(
        "--energy-learning-rate",
        type=positive_float,
        default=None,
        help="peak Adam learning rate of E (default: 3e-3, or 1e-2 with bond "
        "couplings)",
    )
    fit_parser.add_argument(
        "--n-states",
        type=int,
        default=None,
        help="states per site: 2 for spins -1/+1, q for Potts or clock states "
        "(default: the data set's q, else 2)",
    )
    fit_parser.add_argument(
        "--energy-kind",
        choices=["tiles", "bonds"],
        default=None,
        help="'tiles': one translation-invariant tile network; 'bonds': a "
        "learned coupling per bond of one disordered instance, valid only at "
        "the training size (default: bonds for spin-glass data, else tiles)",
    )
    fit_parser.add_argument(
        "--colour-symmetric",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make E invariant under colour permutations, q > 2 only (default: "
        "on for Potts data, off otherwise)",
    )
    fit_parser.add_argument(
        "--q-colour-symmetric",
        action="store_true",
        help="average q over all q! colour permutations (q = 3 to 5; costs q! "
        "times more)",
    )
    fit_parser.add_argument(
        "--lv-weight", type=float, default=0.1, help="weight of the log-variance term"
    )
    fit_parser.add_argument(
        "--no-z2", action="store_true", help="allow a field term (data with h != 0)"
    )
    fit_parser.add_argument(
        "--joint", action="store_true", help="add a phase training q and E together"
    )
    fit_parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=500,
        help="steps between checkpoints, written to OUTPUT.checkpoint/ and "
        "removed when the fit succeeds",
    )
    fit_parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted fit from OUTPUT.checkpoint/ (same data, "
        "options and seed)",
    )
    fit_parser.add_argument(
        "--force", action="store_true", help="overwrite the model directory"
    )
    fit_parser.add_argument(
        "--stream",
        action="store_true",
        help="read the batches from the HDF5 file chunk by chunk instead of "
        "loading it, for data larger than memory (other batches, so other "
        "results, than a fit in memory)",
    )

    tr = commands.add_parser(
        "transfer",
        formatter_class=_FORMATTER,
        help="predict observables at other T and L",
    )
    tr.add_argument("model", help="model directory written by `dcl fit`")
    tr.add_argument(
        "--T", type=positive_float, nargs="+", required=True, help="temperatures"
    )
    tr.add_argument(
        "--L",
        type=_lattice_size,
        nargs="+",
        default=None,
        help="lattice sizes (default: the training size)",
    )
    tr.add_argument(
        "--chains", type=positive_int, default=32, help="chains per temperature"
    )
    tr.add_argument(
        "--sweeps", type=positive_int, default=2000, help="recorded sweeps per chain"
    )
    tr.add_argument("--burn-in", type=int, default=500, help="discarded sweeps")
    tr.add_argument(
        "--exchange",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run each chain as a replica exchange ladder through the requested "
        "temperatures (default: on for spin-glass models, off otherwise)",
    )
    tr.add_argument("--seed", type=int, default=0, help="PRNG seed")
    tr.add_argument("-o", "--output", default="transfer.json", help="JSON output")
    tr.add_argument("--plot", default=None, help="PNG plot of the curves")
    tr.add_argument("--force", action="store_true", help="overwrite outputs")

    val = commands.add_parser(
        "validate",
        formatter_class=_FORMATTER,
        help="check a model with independent samplers and ln Z",
    )
    val.add_argument("model", help="model directory written by `dcl fit`")
    val.add_argument(
        "--T", type=positive_float, nargs="+", required=True, help="temperatures"
    )
    val.add_argument(
        "--L",
        type=_lattice_size,
        default=None,
        help="lattice size of the chains and SMC (default: the training size)",
    )
    val.add_argument(
        "--chains",
        type=positive_int,
        default=4,
        help="chains per sampler and temperature (at least 4)",
    )
    val.add_argument(
        "--sweeps", type=positive_int, default=2000, help="recorded sweeps per chain"
    )
    val.add_argument("--burn-in", type=int, default=500, help="discarded sweeps")
    val.add_argument(
        "--is-samples",
        type=positive_int,
        default=20000,
        help="samples from q for importance sampling",
    )
    val.add_argument(
        "--imh-steps",
        type=positive_int,
        default=2000,
        help="steps of independence Metropolis-Hastings with q as proposal",
    )
    val.add_argument(
        "--smc-particles",
        type=positive_int,
        default=512,
        help="particles of each tempered SMC run",
    )
    val.add_argument(
        "--smc-runs",
        type=positive_int,
        default=8,
        help="independent SMC runs, whose spread gives the ln Z error",
    )
    val.add_argument("--seed", type=int, default=0, help="PRNG seed")
    val.add_argument(
        "-o",
        "--output",
        default="validation",
        help="output directory for validate.json and plots",
    )
    val.add_argument("--force", action="store_true", help="overwrite outputs")

    ann = commands.add_parser(
        "anneal",
        formatter_class=_FORMATTER,
        help="retrain q variationally against the learned energy at other T",
    )
    ann.add_argument("model", help="model directory written by `dcl fit`")
    ann.add_argument(
        "--T", type=positive_float, nargs="+", required=True, help="temperatures"
    )
    ann.add_argument(
        "--L",
        type=_lattice_size,
        default=None,
        help="lattice size of q (default: the training size); q moves to another "
        "size when it was fitted with --q-position boundary, else a fresh q starts",
    )
    ann.add_argument(
        "--range",
        type=positive_float,
        nargs=2,
        default=None,
        metavar=("T_LOW", "T_HIGH"),
        help="train one temperature-conditioned q over this interval instead of "
        "one q per T; --T then lists where it is evaluated",
    )
    ann.add_argument(
        "--steps",
        type=positive_int,
        default=2000,
        help="optimisation steps per T (in total with --range)",
    )
    ann.add_argument(
        "--batch-size", type=positive_int, default=1024, help="samples of q per step"
    )
    ann.add_argument(
        "--learning-rate", type=positive_float, default=1e-3, help="peak Adam rate"
    )
    ann.add_argument(
        "--z2", action="store_true", help="symmetrise q under the global spin flip"
    )
    ann.add_argument(
        "--eval-size",
        type=positive_int,
        default=16384,
        help="fresh samples of q for the estimates at each T",
    )
    ann.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ann.add_argument(
        "-o", "--output", default="anneal.json", help="JSON output with F_q per T"
    )
    ann.add_argument("--force", action="store_true", help="overwrite the output")

    add_couplings_parser(commands, formatter_class=_FORMATTER)

    demo = commands.add_parser(
        "demo", formatter_class=_FORMATTER, help="simulate, fit and transfer (Ising)"
    )
    demo.add_argument("-o", "--output", default="dcl-demo", help="output directory")
    demo.add_argument(
        "--model",
        choices=["ising", "ising-nnn", "potts", "clock", "spin-glass"],
        default="ising",
        help="model of the demo: 2D Ising, Ising with J2 = 0.5, 3-state Potts, "
        "4-state clock or an 8 x 8 Edwards-Anderson spin glass",
    )
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed")
    demo.add_argument("--force", action="store_true", help="overwrite outputs")
    return parser


def _simulation_model(args):
    """Build the Hamiltonian that ``dcl simulate`` samples from its options."""
    from dcl_prob import hamiltonians

    if args.model != "ising" and args.model != "ising-nnn" and args.h != 0.0:
        raise ValueError(f"--h {args.h} applies to ising and ising-nnn only")
    if args.model in ("potts", "clock") and args.q < 2:
        raise ValueError(f"--q {args.q} is invalid: pass 2 or more states")
    if args.model == "ising":
        return hamiltonians.IsingModel(J=args.J, h=args.h)
    if args.model == "ising-nnn":
        return hamiltonians.IsingNNNModel(J=args.J, J2=args.J2, h=args.h)
    if args.model == "potts":
        return hamiltonians.PottsModel(q=args.q, J=args.J)
    if args.model == "clock":
        return hamiltonians.ClockModel(q=args.q, J=args.J)
    return hamiltonians.EdwardsAndersonModel.random(
        args.L, distribution=args.bond_distribution, seed=args.bond_seed
    )


def _simulate(args) -> None:
    import jax

    from dcl_prob.data import check_output_path, save_dataset
    from dcl_prob.montecarlo import simulate

    check_output_path(args.output, overwrite=args.force)
    model = _simulation_model(args)
    result = simulate(
        model,
        args.L,
        args.T,
        args.samples,
        key=jax.random.key(args.seed),
        sampler=args.sampler,
        n_chains=args.chains,
        temperatures=args.temperatures,
        progress=not args.no_progress,
    )
    save_dataset(
        args.output,
        result.spins,
        attrs=result.dataset_attrs(model, seed=args.seed),
        bonds=getattr(model, "bonds", None),
        overwrite=args.force,
    )
    print(
        f"wrote {result.spins.shape[0]} configurations of L={args.L} at T={args.T:g} "
        f"to {args.output} (integrated autocorrelation time: energy "
        f"{result.tau_int['energy']:.2f}, order parameter "
        f"{result.tau_int['abs_m']:.2f} steps; thinned every {result.thin})"
    )


def _fit(args) -> None:
    import hashlib
    import json

    import jax
    import numpy as np

    from dcl_prob.data import load_dataset
    from dcl_prob.fit import fit
    from dcl_prob.fit_config import config_for_data
    from dcl_prob.model_io import Checkpointer, save_model
    from dcl_prob.streaming import StreamedSpins

    primary = _is_primary_process()
    output = Path(args.output)
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} already exists; pass --force to replace it")
    if args.stream:
        data = StreamedSpins(args.data, encoding=args.encoding)
        spins, data_sha256 = data, data.sha256
    else:
        data = load_dataset(args.data, encoding=args.encoding)
        spins = data.spins
        data_sha256 = hashlib.sha256(
            np.ascontiguousarray(data.spins).tobytes()
        ).hexdigest()
    config = config_for_data(
        data.attrs,
        n_states=args.n_states,
        energy_kind=args.energy_kind,
        colour_symmetric=args.colour_symmetric,
        q_colour_symmetric=args.q_colour_symmetric or None,
        z2=False if args.no_z2 else None,
        hidden_size=args.hidden_size,
        q_position=args.q_position,
        q_steps=args.q_steps,
        energy_steps=args.energy_steps,
        batch_size=args.batch_size,
        lv_weight=args.lv_weight,
        q_learning_rate=args.q_learning_rate,
        energy_learning_rate=args.energy_learning_rate,
        joint=args.joint,
    )
    fingerprint = {
        "data_sha256": data_sha256,
        "temperature": float(data.temperature),
        "fit_config": config.to_dict(),
        "seed": args.seed,
    }
    if args.stream:  # streamed batches differ, so their checkpoints do too
        fingerprint["streamed"] = True
    checkpoints = Checkpointer(
        output.with_name(output.name + ".checkpoint"),
        args.checkpoint_every,
        json.loads(json.dumps(fingerprint)),
    )
    if checkpoints.exists() and args.resume:
        checkpoints.check()
    elif checkpoints.exists() and args.force:
        if primary:
            checkpoints.remove()
    elif checkpoints.exists():
        raise FileExistsError(
            f"{checkpoints.directory} contains the checkpoint of an interrupted fit; "
            "pass --resume to continue it or --force to start over"
        )
    elif args.resume:
        print(
            f"dcl fit: no checkpoint in {checkpoints.directory}; starting from the "
            "beginning",
            file=sys.stderr,
        )
    # Only process 0 writes checkpoints; the others read them to resume.
    process_checkpoints = checkpoints
    if not primary:
        process_checkpoints = _ReadOnlyCheckpoints(checkpoints) if args.resume else None
    try:
        result = fit(
            spins,
            data.temperature,
            key=jax.random.key(args.seed),
            config=config,
            progress=not args.no_progress,
            checkpoints=process_checkpoints,
        )
    except FloatingPointError as error:
        raise FloatingPointError(
            f"{error}. The last checkpoint before the failure is kept in "
            f"{checkpoints.directory}; the fit is deterministic, so rerun with "
            "--force and a lower --q-learning-rate or --energy-learning-rate"
        ) from None
    finally:
        if args.stream:
            data.close()
    if not primary:
        return
    save_model(output, result, data_attrs=data.attrs, overwrite=args.force)
    checkpoints.remove()
    print(f"wrote model to {output}: {result.metrics}")


class _ReadOnlyCheckpoints:
    """Checkpoints of the processes other than 0, which read but never write."""

    def __init__(self, checkpoints):
        self._checkpoints = checkpoints

    def save(self, *args, **kwargs) -> None:
        pass

    def restore(self, phase, model, opt_state):
        return self._checkpoints.restore(phase, model, opt_state)


def _transfer(args) -> None:
    import jax

    from dcl_prob import evaluation
    from dcl_prob.demo import write_json
    from dcl_prob.model_io import load_model
    from dcl_prob.plots import plot_transfer
    from dcl_prob.transfer import order_parameter_for_model, transfer

    primary = _is_primary_process()
    for path in filter(None, (args.output, args.plot)):
        if Path(path).exists() and not args.force:
            raise FileExistsError(f"{path} already exists; pass --force to replace it")
    loaded = load_model(args.model)
    sizes = args.L or [loaded.L]
    model_name = loaded.data_attrs.get("model")
    order_parameter = order_parameter_for_model(model_name, loaded.energy.n_states)
    exchange = args.exchange
    if exchange is None:
        exchange = model_name == "spin-glass"
    rows = []
    for L, key in zip(sizes, jax.random.split(jax.random.key(args.seed), len(sizes))):
        rows += transfer(
            loaded.energy,
            args.T,
            L,
            key=key,
            n_chains=args.chains,
            n_sweeps=args.sweeps,
            burn_in=args.burn_in,
            order_parameter=order_parameter,
            exchange=exchange,
            progress=not args.no_progress,
        )
    attrs = loaded.data_attrs
    kaufman_J = None
    if attrs.get("model") == "ising" and float(attrs.get("h", 0.0)) == 0.0:
        # The data set records the model it came from; the exact solution is
        # shown for comparison only.
        kaufman_J = float(attrs.get("J", 1.0))
        for row in rows:
            row["reference"] = {
                "kaufman": evaluation.kaufman_reference(row["L"], row["T"], kaufman_J)
            }
    if not primary:
        return
    trained_at = {"T": loaded.temperature, "L": loaded.L}
    payload = {
        "model": attrs.get("model", "unknown"),
        "trained_at": trained_at,
        "rows": rows,
    }
    write_json(args.output, payload, overwrite=args.force)
    if args.plot:
        plot_transfer(rows, args.plot, trained_at=trained_at, kaufman_J=kaufman_J)
    for row in rows:
        print(
            f"L={row['L']:>3} T={row['T']:.4g}  e={row['e']:.4f}±{row['e_err']:.4f}  "
            f"{_ORDER_LABELS[order_parameter]}={row['abs_m']:.4f}"
            f"±{row['abs_m_err']:.4f}  "
            f"c={row['c']:.3f}±{row['c_err']:.3f}  chi={row['chi']:.3f}±"
            f"{row['chi_err']:.3f}  R-hat={row['rhat_max']:.3f}  "
            f"ESS={row['ess_min']:.0f}"
        )
    print(f"wrote {args.output}" + (f" and {args.plot}" if args.plot else ""))


_ORDER_LABELS = {
    "magnetization": "|m|",
    "potts": "m_potts",
    "clock": "|m_clock|",
    "overlap": "|q_ab|",
}


def _validate(args) -> None:
    import jax

    from dcl_prob.demo import write_json
    from dcl_prob.model_io import load_model
    from dcl_prob.validate import validate

    output = Path(args.output)
    report_path = output / "validate.json"
    if output.is_dir() and any(output.iterdir()) and not args.force:
        raise FileExistsError(
            f"output directory {output} is not empty; pass --force to replace "
            "its files or choose another -o"
        )
    if args.chains < 4:
        raise ValueError(f"--chains {args.chains} is invalid: use at least 4")
    loaded = load_model(args.model)
    output.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = validate(
            loaded,
            args.T,
            key=jax.random.key(args.seed),
            L=args.L,
            n_chains=args.chains,
            n_sweeps=args.sweeps,
            burn_in=args.burn_in,
            n_is_samples=args.is_samples,
            n_imh_steps=args.imh_steps,
            smc_particles=args.smc_particles,
            smc_runs=args.smc_runs,
            out_dir=output,
            progress=not args.no_progress,
        )
    write_json(report_path, report, overwrite=args.force)
    imh = report["neural_imh"]
    print(
        f"neural IMH at T0={imh['temperature']:g}, L={imh['L']}: acceptance "
        f"{imh['acceptance_rate']:.3f}"
    )
    for row in report["rows"]:
        local = row["samplers"]["local_metropolis"]
        tempering = row["samplers"]["replica_exchange"]
        line = (
            f"T={row['T']:<6g} e={local['e']['mean']:.4f}±{local['e']['mcse']:.4f} "
            f"(PT {tempering['e']['mean']:.4f}±{tempering['e']['mcse']:.4f})  "
            f"|m|={local['abs_m']['mean']:.4f} (PT {tempering['abs_m']['mean']:.4f})"
            f"  lnZ SMC={row['log_z_smc']['log_z']:.3f}"
            f"±{row['log_z_smc']['log_z_err']:.3f}"
        )
        if "log_z_is" in row:
            line += (
                f" IS={row['log_z_is']['log_z']:.3f}±{row['log_z_is']['log_z_err']:.3f}"
                f" (ESS {row['log_z_is']['ess_fraction']:.1%})"
            )
        if "reference" in row:
            line += f" exact={row['reference']['log_z']:.3f}"
        print(line)
    for problem in report["warnings"]:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"wrote {report_path} and plots in {output}/")


def _anneal_start(loaded, L: int, key):
    """Return the q that annealing starts from at size ``L``.

    That is the fitted q when it can move to ``L``; otherwise a fresh q, with a
    note on stderr.
    """
    from dcl_prob.nn.rnn import AutoregressiveGRU

    if L == loaded.L or loaded.q_net.position_encoding == "boundary":
        return loaded.q_net.resized(L)
    print(
        f"note: the fitted q has per-site parameters for L={loaded.L}; annealing "
        f"starts from a fresh q at L={L} (refit with --q-position boundary for a "
        "warm start)",
        file=sys.stderr,
    )
    return AutoregressiveGRU(
        L, loaded.q_net.hidden_size, key=key, position_encoding="boundary"
    )


def _anneal_row(T: float, L: int, estimate: dict, exact_J) -> dict:
    from dcl_prob import exact

    row = {
        "T": T,
        "L": L,
        "free_energy": estimate["free_energy"],
        "free_energy_err": estimate["free_energy_error"],
        "e": estimate["energy"],
        "e_err": estimate["energy_error"],
        "entropy": estimate["entropy"],
        "entropy_err": estimate["entropy_error"],
        "abs_m": estimate["abs_m"],
        "abs_m_err": estimate["abs_m_error"],
        "reweighted": estimate["reweighted"],
    }
    if exact_J is not None:
        # For comparison only: the learned energy approximates this model.
        row["reference"] = {
            "source": "Kaufman exact finite-lattice solution",
            "free_energy": float(exact.kaufman(L, T, exact_J).free_energy),
        }
    return row


def _print_anneal_row(row: dict) -> None:
    reweighted = row["reweighted"]
    line = (
        f"T={row['T']:<6g} F_q={row['free_energy']:.5f}±{row['free_energy_err']:.5f}"
        f"  e={row['e']:.4f}±{row['e_err']:.4f}"
        f"  |m|={row['abs_m']:.4f}±{row['abs_m_err']:.4f}"
        f"  reweighted e={reweighted['energy']:.4f}±{reweighted['energy_error']:.4f}"
        f" |m|={reweighted['abs_m']:.4f}±{reweighted['abs_m_error']:.4f}"
        f" (ESS {100 * reweighted['ess_fraction']:.1f}%)"
    )
    if "reference" in row:
        line += f"  exact f of the true model {row['reference']['free_energy']:.5f}"
    print(line)


def _anneal(args) -> None:
    import jax

    from dcl_prob.demo import write_json
    from dcl_prob.model_io import load_model
    from dcl_prob.variational import anneal, anneal_range

    if Path(args.output).exists() and not args.force:
        raise FileExistsError(f"{args.output} already exists; pass --force")
    if args.range is not None:
        t_low, t_high = args.range
        outside = [T for T in args.T if not t_low <= T <= t_high]
        if t_low >= t_high or outside:
            raise ValueError(
                f"--range {t_low:g} {t_high:g} with --T {outside or args.T} is "
                "invalid: pass T_LOW < T_HIGH and evaluation temperatures inside"
            )
    loaded = load_model(args.model)
    L = args.L or loaded.L
    loaded.energy.geometry(L)  # a clear error if L does not fit the tiles
    attrs = loaded.data_attrs
    exact_J = None
    if attrs.get("model") == "ising" and float(attrs.get("h", 0.0)) == 0.0:
        exact_J = float(attrs.get("J", 1.0))
    key_start, key_train = jax.random.split(jax.random.key(args.seed))
    q_start = _anneal_start(loaded, L, key_start)
    rows = []
    if args.range is not None:
        result = anneal_range(
            q_start.with_temperature_input(key=key_start),
            loaded.energy,
            tuple(args.range),
            key=key_train,
            n_steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            z2=args.z2,
            eval_temperatures=args.T,
            eval_size=args.eval_size,
            progress=not args.no_progress,
        )
        for T in args.T:
            rows.append(_anneal_row(T, L, result.estimates[float(T)], exact_J))
            _print_anneal_row(rows[-1])
    else:
        for T, key in zip(args.T, jax.random.split(key_train, len(args.T))):
            # Each temperature starts from the q fitted at T0 (a warm start).
            result = anneal(
                q_start,
                loaded.energy,
                T,
                key=key,
                n_steps=args.steps,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                z2=args.z2,
                eval_size=args.eval_size,
                progress=not args.no_progress,
            )
            estimate = {
                "free_energy": result.free_energy,
                "free_energy_error": result.free_energy_error,
                "energy": result.energy,
                "energy_error": result.energy_error,
                "entropy": result.entropy,
                "entropy_error": result.entropy_error,
                "abs_m": result.abs_m,
                "abs_m_error": result.abs_m_error,
                "reweighted": result.reweighted,
            }
            rows.append(_anneal_row(T, L, estimate, exact_J))
            _print_anneal_row(rows[-1])
    payload = {
        "model_trained_at": {"T": loaded.temperature, "L": loaded.L},
        "conditioned_range": list(args.range) if args.range is not None else None,
        "rows": rows,
    }
    write_json(args.output, payload, overwrite=args.force)
    print(f"wrote {args.output}")


def _demo(args) -> None:
    import json

    from dcl_prob.demo import demo_settings, format_table, run_demo
    from dcl_prob.demo_models import format_model_table

    summary = run_demo(
        args.output,
        seed=args.seed,
        settings=demo_settings(args.model),
        overwrite=args.force,
        progress=not args.no_progress,
    )
    rows = json.loads((Path(args.output) / "transfer.json").read_text())["rows"]
    if args.model == "ising":
        print(format_table(rows))
        print(
            f"\nmax relative energy error vs Kaufman: "
            f"{summary['max_energy_relative_error']:.4f}; max |m| deviation from "
            f"reference MC: {summary['max_abs_m_deviation']:.4f}"
        )
    else:
        print(format_model_table(rows))
        print(
            f"\nmax relative energy error vs reference MC: "
            f"{summary['max_energy_relative_error']:.4f}; max deviation of the "
            f"order parameter ({summary['order_parameter']}): "
            f"{summary['max_order_parameter_deviation']:.4f}"
        )
        print(f"effective couplings: {summary['effective_couplings']}")
    print(f"timings (s): { {k: round(v, 1) for k, v in summary['timings_s'].items()} }")
    print(
        f"outputs in {args.output}/: data.h5 model/ transfer.json transfer.png "
        "summary.json"
    )


_COMMANDS = {
    "simulate": _simulate,
    "fit": _fit,
    "transfer": _transfer,
    "validate": _validate,
    "anneal": _anneal,
    "couplings": run_couplings,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``dcl`` with the arguments ``argv`` and return its exit status.

    It configures logging with :func:`logging.basicConfig` (level INFO with
    ``--verbose``, else WARNING) and runs the subcommand. A ``ValueError``,
    ``OSError`` or ``FloatingPointError`` is printed to stderr as
    ``dcl COMMAND: error: MESSAGE`` instead of a traceback, and other
    exceptions propagate.

    Args:
        argv: the command-line arguments without the program name, such as
            ``["simulate", "--help"]``. None reads ``sys.argv[1:]``.

    Returns:
        0 on success, 2 after a ``ValueError``, ``OSError`` (which includes
        ``FileExistsError`` and ``FileNotFoundError``) or
        ``FloatingPointError``, and 130 after ``KeyboardInterrupt``.

    Raises:
        SystemExit: from :mod:`argparse` for ``--help`` and ``--version``
            (status 0) and for invalid arguments (status 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.filterwarnings(
        "ignore", message=".*ArviZ is undergoing", category=FutureWarning
    )
    try:
        _COMMANDS[args.command](args)
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as error:
        print(f"dcl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"dcl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dcl {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
