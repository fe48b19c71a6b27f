"""The end-to-end demonstration behind ``dcl demo``.

1. Wolff Monte Carlo data of the 2D Ising model at one temperature ``T0`` in
   the paramagnetic phase, on an ``L x L`` lattice.
2. ``fit``: q and E from those configurations and ``T0`` alone.
3. ``transfer``: Monte Carlo on the learned energy at every temperature of the
   grid, at the training size and at a larger one.
4. Evaluation only (nothing flows back into training): the exact Kaufman
   energy and heat capacity, a long reference Monte Carlo run on the true
   Hamiltonian for ``|m|``, and the effective coupling of the learned energy on
   configurations from every temperature.

The Potts and spin-glass demos (:mod:`dcl_prob.demo_models`) follow the same
steps with their own data, order parameter and references.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax

from dcl_prob import evaluation
from dcl_prob.data import save_dataset
from dcl_prob.demo_models import DEMO_MODELS, run_model_demo, transfer_sizes
from dcl_prob.fit import FitConfig, fit
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.model_io import save_model
from dcl_prob.montecarlo import simulate
from dcl_prob.plots import plot_transfer

__all__ = ["DemoSettings", "demo_settings", "format_table", "run_demo", "write_json"]

logger = logging.getLogger(__name__)

# Training temperature of the Potts demo, above T_c = 1 / ln(1 + sqrt(3)).
POTTS_T0 = 1.1


@dataclass(frozen=True)
class DemoSettings:
    """Settings of :func:`run_demo`; the defaults are the documented Ising demo.

    :func:`demo_settings` gives the defaults of the other models. ``q``, ``J2``
    and ``bond_seed`` apply to the Potts and clock, next-nearest-neighbour
    Ising and spin-glass demos, ``reference_sweeps``
    to the Ising reference and ``reference_samples`` to the others. A
    ``fit_config`` of None takes the options that fit the data
    (:func:`~dcl_prob.fit_config.config_for_data`).
    """

    L: int = 8
    temperature: float = 3.0
    n_samples: int = 20000
    temperatures: tuple[float, ...] = (1.5, 2.0, 2.269, 2.5, 3.0, 3.5, 4.0)
    sizes: tuple[int, ...] = (8, 16)
    n_chains: int = 32
    n_sweeps: int = 2000
    burn_in: int = 500
    reference_sweeps: int = 10000
    fit_config: FitConfig | None = field(default_factory=FitConfig)
    model: str = "ising"
    q: int = 3
    J2: float = 0.5
    bond_seed: int = 0
    reference_samples: int = 4096


def demo_settings(model: str = "ising") -> DemoSettings:
    """Return the default settings of the demo of ``model``, a name of
    :data:`DEMO_MODELS`.

    Temperatures are in units of J/k_B (the bond scale for the spin glass).
    Replace fields with ``dataclasses.replace(demo_settings("potts"), L=4)``.

    Raises:
        ValueError: for a name that is not in :data:`DEMO_MODELS`.
    """
    if model == "ising":
        return DemoSettings()
    if model == "potts":
        return DemoSettings(
            model="potts",
            temperature=POTTS_T0,
            temperatures=(0.85, 0.95, 1.0, 1.05, 1.2),
            fit_config=None,
        )
    if model == "clock":  # T_c = J / ln(1 + sqrt(2)): two Ising copies at J / 2
        return DemoSettings(
            model="clock",
            q=4,
            temperature=1.4,
            temperatures=(0.9, 1.05, 1.15, 1.25, 1.5),
            fit_config=None,
        )
    if model == "ising-nnn":
        return DemoSettings(
            model="ising-nnn",
            temperature=4.5,
            temperatures=(2.5, 3.0, 3.5, 4.0, 4.5),
            fit_config=None,
        )
    if model == "spin-glass":
        return DemoSettings(
            model="spin-glass",
            temperature=4.0,
            n_samples=100000,
            temperatures=(1.0, 2.0, 3.0),
            sizes=(8,),
            n_chains=16,
            fit_config=None,
        )
    raise ValueError(
        f"model={model!r} is invalid: the demo runs one of {list(DEMO_MODELS)}"
    )


def write_json(path: str | os.PathLike, payload: dict, *, overwrite: bool) -> None:
    """Write ``payload`` as JSON atomically (temporary file, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --force to replace it")
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, path)


def format_table(rows: list[dict]) -> str:
    """Format transfer rows with their references as a fixed-width text table."""
    header = (
        f"{'L':>3} {'T':>6} {'e':>17} {'e exact':>8} {'rel.err':>8} "
        f"{'c':>15} {'c exact':>8} {'|m|':>15} {'|m| ref':>15} "
        f"{'J_eff':>6} {'R-hat':>6} {'ESS':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        exact_ref = row.get("reference", {}).get("kaufman", {})
        mc_ref = row.get("reference", {}).get("monte_carlo", {})
        e_exact = exact_ref.get("e", float("nan"))
        rel = (row["e"] - e_exact) / abs(e_exact)
        lines.append(
            f"{row['L']:>3} {row['T']:>6.3f} "
            f"{row['e']:>9.4f}±{row['e_err']:<7.4f} {e_exact:>8.4f} {rel:>+8.4f} "
            f"{row['c']:>7.3f}±{row['c_err']:<7.3f} "
            f"{exact_ref.get('c', float('nan')):>8.3f} "
            f"{row['abs_m']:>7.4f}±{row['abs_m_err']:<7.4f} "
            f"{mc_ref.get('abs_m', float('nan')):>7.4f}±"
            f"{mc_ref.get('abs_m_err', float('nan')):<7.4f} "
            f"{row.get('effective_coupling', float('nan')):>6.4f} "
            f"{row['rhat_max']:>6.3f} {row['ess_min']:>6.0f}"
        )
    return "\n".join(lines)


def run_demo(
    out_dir: str | os.PathLike = "dcl-demo",
    *,
    seed: int = 0,
    settings: DemoSettings | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Run the demonstration and write its files to ``out_dir``.

    Writes ``data.h5``, ``model/``, ``transfer.json``, ``transfer.png`` and
    ``summary.json``.

    Returns:
        The summary: worst relative energy error, worst ``|m|`` deviation from the
        reference, effective couplings and the time of every stage.
    """
    settings = settings or DemoSettings()
    out = Path(out_dir)
    outputs = [out / n for n in ("data.h5", "model", "transfer.json", "transfer.png")]
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"demo outputs {existing} already exist; pass --force to replace them "
            "or choose another -o directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    if settings.model != "ising":
        return run_model_demo(
            out, settings, seed=seed, overwrite=overwrite, progress=progress
        )
    model = IsingModel(J=1.0, h=0.0)
    key_data, key_fit, key_transfer, key_reference = jax.random.split(
        jax.random.key(seed), 4
    )
    timings = {}

    start = time.perf_counter()
    data = simulate(
        model,
        settings.L,
        settings.temperature,
        settings.n_samples,
        key=key_data,
        progress=progress,
    )
    attrs = data.dataset_attrs(model, seed=seed)
    save_dataset(out / "data.h5", data.spins, attrs=attrs, overwrite=overwrite)
    timings["simulate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    result = fit(
        data.spins,
        settings.temperature,
        key=key_fit,
        config=settings.fit_config,
        progress=progress,
    )
    save_model(out / "model", result, data_attrs=attrs, overwrite=overwrite)
    timings["fit_s"] = time.perf_counter() - start

    start = time.perf_counter()
    rows = transfer_sizes(result.energy, settings, key=key_transfer, progress=progress)
    timings["transfer_s"] = time.perf_counter() - start

    start = time.perf_counter()
    add_references(
        rows,
        result.energy,
        model,
        key=key_reference,
        n_sweeps=settings.reference_sweeps,
        progress=progress,
    )
    timings["reference_s"] = time.perf_counter() - start

    trained_at = {"T": settings.temperature, "L": settings.L}
    payload = {"model": "ising", "trained_at": trained_at, "rows": rows}
    write_json(out / "transfer.json", payload, overwrite=overwrite)
    plot_transfer(rows, out / "transfer.png", trained_at=trained_at, kaufman_J=model.J)
    summary = summarize(rows, timings, settings, result.metrics)
    write_json(out / "summary.json", summary, overwrite=True)
    return summary


def add_references(rows, energy, model, *, key, n_sweeps, progress=True) -> None:
    """Add Kaufman and reference Monte Carlo values and the effective coupling
    to every transfer row, in place."""
    sizes = sorted({row["L"] for row in rows})
    for L, key_L in zip(sizes, jax.random.split(key, len(sizes))):
        selected = [row for row in rows if row["L"] == L]
        temperatures = [row["T"] for row in selected]
        reference, snapshots = evaluation.reference_monte_carlo(
            model, L, temperatures, key=key_L, n_sweeps=n_sweeps, progress=progress
        )
        for row, ref in zip(selected, reference):
            mc = {
                k: ref[k]
                for k in (
                    "e",
                    "e_err",
                    "abs_m",
                    "abs_m_err",
                    "c",
                    "c_err",
                    "chi",
                    "chi_err",
                    "rhat_max",
                    "ess_min",
                )
            }
            mc["source"] = ref["sampler"]
            mc["sweeps_per_chain"] = n_sweeps
            row["reference"] = {
                "kaufman": evaluation.kaufman_reference(L, row["T"], model.J),
                "monte_carlo": mc,
            }
            row["effective_coupling"] = evaluation.effective_coupling(
                energy, model, snapshots[row["T"]]
            )


def summarize(rows, timings, settings, metrics) -> dict:
    """Worst errors against the references, couplings and timings."""
    energy_errors = [
        abs(r["e"] - r["reference"]["kaufman"]["e"])
        / abs(r["reference"]["kaufman"]["e"])
        for r in rows
    ]
    m_errors = [abs(r["abs_m"] - r["reference"]["monte_carlo"]["abs_m"]) for r in rows]
    return {
        "settings": asdict(settings),
        "max_energy_relative_error": max(energy_errors),
        "max_abs_m_deviation": max(m_errors),
        "effective_coupling": {
            f"L={r['L']},T={r['T']}": r["effective_coupling"] for r in rows
        },
        "fit_metrics": metrics,
        "timings_s": timings,
    }
