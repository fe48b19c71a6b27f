"""The ``dcl couplings`` command: posteriors of physical couplings from a data set.

``dcl couplings DATA.h5 -o DIR`` samples the couplings of a lattice model
with :func:`dcl_prob.bayes.posterior` and writes into ``DIR``:

- ``posterior.csv`` and ``posterior.json``: ``arviz.summary`` of the
  couplings (mean, sd, 90% HDI, MCSE, ESS, R-hat);
- ``comparison.csv`` and ``comparison.json``: ``arviz.compare`` of the
  nested Ising models by PSIS-LOO, or the LOO of the one model for Potts and
  spin-glass data;
- ``ppc.png``: the posterior predictive check of :func:`dcl_prob.bayes.plot_ppc`;
- ``trace.png`` and ``trace_rank.png``: ArviZ trace and rank plots, for
  models with at most 8 couplings;
- ``couplings.json``: the options, the data, the NUTS diagnostics and the
  list of files.

:func:`add_couplings_parser` adds the sub-command to the ``dcl`` parser and
:func:`run_couplings` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dcl_prob.cli_types import positive_float, positive_int

__all__ = ["COUPLING_MODELS", "add_couplings_parser", "run_couplings"]

# Command-line model names and the names of dcl_prob.bayes.posterior.
COUPLING_MODELS = {
    "ising-j": "J",
    "ising-j-j2": "J+J2",
    "ising-j-j2-h": "J+J2+h",
    "potts": "potts",
    "spin-glass": "spin-glass",
}
ISING_MODELS = ("ising-j", "ising-j-j2", "ising-j-j2-h")
# Default model for the "model" attribute of a data set.
_DEFAULT_MODELS = {
    "ising": "ising-j",
    "ising-nnn": "ising-j-j2",
    "potts": "potts",
    "spin-glass": "spin-glass",
}
_MAX_TRACE_COUPLINGS = 8
_HDI_PROB = 0.9


def add_couplings_parser(
    commands, *, formatter_class=argparse.ArgumentDefaultsHelpFormatter
) -> argparse.ArgumentParser:
    """Add the ``couplings`` sub-command to the sub-parsers ``commands``.

    Returns the new parser; :func:`run_couplings` runs its arguments.
    """
    parser = commands.add_parser(
        "couplings",
        formatter_class=formatter_class,
        help="posterior of physical couplings (NUTS), LOO comparison and PPC",
    )
    parser.add_argument("data", help="HDF5 or NPZ data set")
    parser.add_argument(
        "-o", "--output", required=True, help="output directory, created if missing"
    )
    parser.add_argument(
        "--model",
        choices=list(COUPLING_MODELS),
        default=None,
        help="coupling model (default: from the data set's model attribute: "
        "ising-j for ising, ising-j-j2 for ising-nnn, potts, spin-glass)",
    )
    parser.add_argument(
        "--likelihood",
        choices=["pl", "dcl"],
        default="pl",
        help="pl: pseudo-likelihood; dcl: full likelihood with ln Z by "
        "importance sampling from the q of --model-dir",
    )
    parser.add_argument(
        "--model-dir", default=None, help="model directory of `dcl fit`, for dcl"
    )
    parser.add_argument(
        "--proposal-samples",
        type=positive_int,
        default=16384,
        help="samples of q that estimate ln Z (dcl)",
    )
    parser.add_argument(
        "--no-adjustment",
        action="store_true",
        help="use the unadjusted pseudo-likelihood, which ignores the dependence "
        "between sites (intervals too narrow above T_c, too wide near and below it)",
    )
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=1,
        help="consecutive configurations per score block of the adjustment; "
        "about 2 tau_int for correlated configurations",
    )
    parser.add_argument(
        "--prior-scale",
        type=positive_float,
        default=1.0,
        help="standard deviation of the Normal(0, s) prior of each coupling "
        "(energy units)",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        choices=list(ISING_MODELS),
        default=list(ISING_MODELS),
        help="Ising models ranked by PSIS-LOO (Ising data only)",
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the model comparison"
    )
    parser.add_argument("--warmup", type=positive_int, default=500, help="NUTS warmup")
    parser.add_argument(
        "--samples", type=positive_int, default=1000, help="NUTS draws per chain"
    )
    parser.add_argument("--chains", type=positive_int, default=4, help="NUTS chains")
    parser.add_argument(
        "--ppc-draws",
        type=int,
        default=4,
        help="posterior draws simulated for the predictive check; 0 skips it",
    )
    parser.add_argument(
        "--ppc-configs",
        type=positive_int,
        default=None,
        help="configurations per simulated draw (default: min(n, 256))",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument(
        "--force", action="store_true", help="replace files in a non-empty -o"
    )
    return parser


def _resolve_model(args, data) -> tuple[str, int | None]:
    """Return the ``posterior`` model name and ``q`` for the data set."""
    attrs = data.attrs
    data_model = attrs.get("model")
    name = args.model
    if name is None:
        if data_model not in _DEFAULT_MODELS:
            raise ValueError(
                f"the data set's model attribute is {data_model!r}, which has no "
                f"coupling model; pass --model, one of {list(COUPLING_MODELS)}"
            )
        name = _DEFAULT_MODELS[data_model]
    default_encoding = "potts" if data_model in ("potts", "clock") else "pm1"
    potts_data = attrs.get("encoding", default_encoding) == "potts"
    if (name == "potts") != potts_data:
        kind = "Potts states 0..q-1" if potts_data else "-1/+1 spins"
        fitting = "potts" if potts_data else "an ising-* model or spin-glass"
        raise ValueError(
            f"--model {name} does not match the data, which contain {kind}; "
            f"use --model {fitting}"
        )
    return COUPLING_MODELS[name], (int(attrs["q"]) if name == "potts" else None)


def _check_output(output: Path, force: bool) -> None:
    if output.exists() and not output.is_dir():
        raise FileExistsError(
            f"output {output} exists and is not a directory; choose another -o"
        )
    if output.is_dir() and any(output.iterdir()) and not force:
        raise FileExistsError(
            f"output directory {output} is not empty; pass --force to replace its "
            "files or choose another -o"
        )


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _write_table(frame, output: Path, stem: str) -> list[str]:
    """Write a DataFrame as ``stem.csv`` and ``stem.json``; return the names."""
    _write_text(output / f"{stem}.csv", frame.to_csv())
    _write_text(output / f"{stem}.json", frame.to_json(orient="index", indent=2))
    return [f"{stem}.csv", f"{stem}.json"]


def _proposal(args, L: int):
    if args.likelihood != "dcl":
        if args.model_dir is not None:
            raise ValueError(
                "--model-dir is used only with --likelihood dcl; remove it or "
                "pass --likelihood dcl"
            )
        return None
    if args.model_dir is None:
        raise ValueError(
            "--likelihood dcl needs the fitted q: pass --model-dir DIR written by "
            "`dcl fit` on this data"
        )
    from dcl_prob.model_io import load_model

    loaded = load_model(args.model_dir)
    if loaded.L != L:
        raise ValueError(
            f"the model in {args.model_dir} was fitted at L={loaded.L}, the data "
            f"have L={L}; fit q on this data set"
        )
    return loaded.distribution()


def _diagnostics(idata, names) -> dict:
    import arviz as az

    rhat = az.rhat(idata, var_names=names)
    ess = az.ess(idata, var_names=names, method="bulk")
    return {
        "rhat_max": max(float(rhat[name].max()) for name in names),
        "ess_bulk_min": min(float(ess[name].min()) for name in names),
        "divergences": int(idata.posterior.attrs["num_divergences"]),
    }


def _is_json(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list))


def run_couplings(args) -> None:
    """Run ``dcl couplings`` with the parsed ``args`` of :func:`add_couplings_parser`.

    Raises:
        FileExistsError: if ``-o`` is a non-empty directory and ``--force`` is
            not given, or a file.
        ValueError: for data or options that do not fit together.
    """
    import arviz as az
    import jax

    from dcl_prob import bayes
    from dcl_prob.data import load_dataset

    output = Path(args.output)
    _check_output(output, args.force)
    if args.ppc_draws < 0:
        raise ValueError(f"--ppc-draws {args.ppc_draws} is invalid: pass 0 or more")
    data = load_dataset(args.data)
    model, q = _resolve_model(args, data)
    L = int(data.spins.shape[-1])
    proposal = _proposal(args, L)
    options = {
        "likelihood": args.likelihood,
        "adjusted": None if args.likelihood == "dcl" else not args.no_adjustment,
        "proposal": proposal,
        "num_proposal_samples": args.proposal_samples,
        "block_size": args.block_size,
        "prior_scale": args.prior_scale,
        "num_warmup": args.warmup,
        "num_samples": args.samples,
        "num_chains": args.chains,
    }
    key_posterior, key_compare, key_ppc, key_proposal = jax.random.split(
        jax.random.key(args.seed), 4
    )
    # The compared models share the proposal samples of the dcl likelihood.
    options["proposal_key"] = key_proposal
    idata = bayes.posterior(
        data.spins, data.temperature, model, key=key_posterior, q=q, **options
    )
    output.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in bayes.coupling_family(model, L=L, q=q).sites()]
    files = _write_table(
        az.summary(idata, var_names=names, hdi_prob=_HDI_PROB), output, "posterior"
    )

    comparison = None
    if not args.no_compare and model in ("J", "J+J2", "J+J2+h"):
        compared = [COUPLING_MODELS[name] for name in dict.fromkeys(args.compare)]
        if model not in compared:
            compared.append(model)
        if len(compared) >= 2:
            comparison = bayes.compare_models(
                data.spins,
                data.temperature,
                compared,
                key=key_compare,
                posteriors={model: idata},
                **options,
            )
    elif not args.no_compare:
        comparison = az.compare({model: idata}, ic="loo")
    if comparison is not None:
        files += _write_table(comparison, output, "comparison")

    if args.ppc_draws:
        checked = bayes.posterior_predictive_check(
            idata,
            key=key_ppc,
            num_draws=min(args.ppc_draws, args.samples * args.chains),
            num_configs=args.ppc_configs,
        )
        bayes.plot_ppc(checked, output / "ppc.png")
        files.append("ppc.png")
    family = bayes.coupling_family(model, L=L, q=q)
    if family.dimension <= _MAX_TRACE_COUPLINGS:
        from dcl_prob.diagnostics import plot_diagnostics

        plot_diagnostics(idata.posterior[names], output / "trace.png")
        files += ["trace.png", "trace_rank.png"]

    report = {
        "arguments": {
            name: value for name, value in vars(args).items() if _is_json(value)
        },
        "data": os.fspath(args.data),
        "model": model,
        "q": q,
        "L": L,
        "temperature": data.temperature,
        "n_configs": int(len(data.spins)),
        "likelihood": args.likelihood,
        "adjusted": bool(idata.posterior.attrs["adjusted"]),
        "block_size": args.block_size,
        "prior_scale": args.prior_scale,
        "nuts": {"warmup": args.warmup, "samples": args.samples, "chains": args.chains},
        "seed": args.seed,
        "diagnostics": _diagnostics(idata, names),
        "files": files + ["couplings.json"],
    }
    if args.likelihood == "dcl":
        report["proposal_ess"] = float(idata.posterior.attrs["proposal_ess"])
    _write_text(output / "couplings.json", json.dumps(report, indent=2) + "\n")

    summary = az.summary(idata, var_names=names, hdi_prob=_HDI_PROB, kind="stats")
    print(summary.head(10).to_string())
    if comparison is not None and len(comparison) > 1:
        print(f"preferred by PSIS-LOO: {comparison.index[0]}")
    print(f"wrote {', '.join(report['files'])} to {output}/")
