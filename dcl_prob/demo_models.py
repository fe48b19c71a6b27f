"""The demonstrations of ``dcl demo --model`` for the models other than Ising.

Each follows the steps of the Ising demo in :mod:`dcl_prob.demo`. Monte Carlo
makes data of the true model at one temperature ``T0`` and one size. ``fit``
receives those configurations and ``T0`` alone. ``transfer`` samples the
learned energy at other temperatures (and sizes, where the energy allows it).
For evaluation only, Monte Carlo of the true model then runs at every target.

- Potts, q = 3, standard form ``-J sum delta(s_i, s_j)``: trained on 8 x 8
  above ``T_c = J / ln(1 + sqrt(3))`` (about 0.995), transferred through the
  transition at L = 8 and 16; the order parameter is
  ``(q max_a n_a / N - 1) / (q - 1)``.
- Clock, q = 4, ``-J sum cos(2 pi (s_i - s_j) / q)`` (two Ising copies at
  coupling ``J / 2``, so ``T_c = J / ln(1 + sqrt(2))``, about 1.135), and
  Ising with a diagonal coupling ``J2 = 0.5``: trained on 8 x 8 above the
  transition, transferred at L = 8 and 16.
- Edwards-Anderson spin glass, one 8 x 8 instance with Gaussian bonds drawn
  from ``bond_seed``: trained at T0 = 4 with a learned coupling per bond,
  transferred with replica exchange to T = 1, 2, 3 at the training size (the
  bonds of one instance exist only there); the order parameter is the
  overlap of two independent chains. The learned couplings are compared with
  the true bonds.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from dcl_prob import evaluation, exact
from dcl_prob.data import save_dataset
from dcl_prob.fit import fit
from dcl_prob.fit_config import config_for_data
from dcl_prob.hamiltonians import ClockModel, IsingNNNModel, PottsModel
from dcl_prob.model_io import save_model
from dcl_prob.montecarlo import simulate
from dcl_prob.plots import plot_transfer
from dcl_prob.spin_glass import EdwardsAndersonModel
from dcl_prob.transfer import order_parameter_for_model, transfer

__all__ = ["DEMO_MODELS", "format_model_table", "run_model_demo", "transfer_sizes"]

#: Models of ``dcl demo --model``; all but ``"ising"`` run here.
DEMO_MODELS = ("ising", "ising-nnn", "potts", "clock", "spin-glass")


def true_model(settings):
    """Return the Hamiltonian that makes the demo's data (used after that only to
    evaluate)."""
    if settings.model == "potts":
        return PottsModel(q=settings.q, J=1.0)
    if settings.model == "clock":
        return ClockModel(q=settings.q, J=1.0)
    if settings.model == "ising-nnn":
        return IsingNNNModel(J=1.0, J2=settings.J2)
    return EdwardsAndersonModel.random(
        settings.L, distribution="gaussian", seed=settings.bond_seed
    )


def format_model_table(rows: list[dict]) -> str:
    """Format transfer rows beside their reference Monte Carlo as a text table."""
    header = (
        f"{'L':>3} {'T':>6} {'e':>17} {'e ref':>8} {'rel.err':>8} "
        f"{'order':>15} {'order ref':>15} {'diff':>7} {'R-hat':>6} {'ESS':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ref = row["reference"]["monte_carlo"]
        rel = (row["e"] - ref["e"]) / abs(ref["e"])
        lines.append(
            f"{row['L']:>3} {row['T']:>6.3f} "
            f"{row['e']:>9.4f}±{row['e_err']:<7.4f} {ref['e']:>8.4f} {rel:>+8.4f} "
            f"{row['abs_m']:>7.4f}±{row['abs_m_err']:<7.4f} "
            f"{ref['abs_m']:>7.4f}±{ref['abs_m_err']:<7.4f} "
            f"{row['abs_m'] - ref['abs_m']:>+7.4f} "
            f"{row['rhat_max']:>6.3f} {row['ess_min']:>6.0f}"
        )
    return "\n".join(lines)


def _coupling_check(energy, model, spins) -> dict:
    """Compare the effective couplings of the learned energy with the true ones."""
    couplings = evaluation.effective_pair_couplings(energy, spins)
    if isinstance(model, EdwardsAndersonModel):
        true = np.asarray(model.bonds, np.float64)
        return {
            "sign_agreement": float(np.mean(np.sign(couplings) == np.sign(true))),
            "correlation": float(np.corrcoef(couplings.ravel(), true.ravel())[0, 1]),
            "slope": float(np.sum(couplings * true) / np.sum(true * true)),
            "configurations": int(spins.shape[0]),
        }
    return {
        "mean": float(np.mean(couplings)),
        "std_over_bonds": float(np.std(couplings)),
        "true": _projected_coupling(model),
        "configurations": int(spins.shape[0]),
    }


def _projected_coupling(model) -> float:
    """Return what :func:`~dcl_prob.evaluation.effective_pair_couplings` gives for
    the true nearest-neighbour pair energy of ``model``.

    With the pair energy ``f(a, b) = -J table(a, b)`` it is
    ``mean_{a != b} f(a, b) - mean_a f(a, a)``: ``J`` for Potts (``table`` is
    the delta) and ``J q / (q - 1)`` for the clock model. For spins it is
    ``J`` itself.
    """
    table_fn = getattr(model, "_pair_table", None)
    if table_fn is None:
        return float(model.J)
    table = np.asarray(table_fn(), np.float64)
    off_diagonal = ~np.eye(table.shape[0], dtype=bool)
    return float(-model.J * (table[off_diagonal].mean() - np.diag(table).mean()))


def transfer_sizes(energy, settings, *, key, progress=True, **options) -> list[dict]:
    """Run :func:`~dcl_prob.transfer.transfer` at every size of ``settings``.

    ``settings`` is a :class:`~dcl_prob.demo.DemoSettings`; ``options`` go to
    ``transfer`` unchanged (``order_parameter``, ``exchange``). Returns the
    rows of all sizes in the order of ``settings.sizes``.
    """
    rows = []
    keys = jax.random.split(key, len(settings.sizes))
    for L, key_L in zip(settings.sizes, keys):
        rows += transfer(
            energy,
            settings.temperatures,
            L,
            key=key_L,
            n_chains=settings.n_chains,
            n_sweeps=settings.n_sweeps,
            burn_in=settings.burn_in,
            progress=progress,
            **options,
        )
    return rows


def run_model_demo(out: Path, settings, *, seed: int, overwrite: bool, progress):
    """Run the demo of ``settings.model`` and write its files to ``out``.

    ``out`` exists and the caller has checked that no output would be
    replaced without ``overwrite``. Writes the files of the Ising demo and
    returns its summary, with the reference taken from Monte Carlo of the
    true model.
    """
    from dcl_prob.demo import write_json

    model = true_model(settings)
    order_parameter = order_parameter_for_model(model.name, model.n_states)
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
    bonds = model.bonds if isinstance(model, EdwardsAndersonModel) else None
    save_dataset(
        out / "data.h5", data.spins, attrs=attrs, bonds=bonds, overwrite=overwrite
    )
    timings["simulate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    config = settings.fit_config or config_for_data(attrs)
    result = fit(
        data.spins, settings.temperature, key=key_fit, config=config, progress=progress
    )
    save_model(out / "model", result, data_attrs=attrs, overwrite=overwrite)
    timings["fit_s"] = time.perf_counter() - start

    start = time.perf_counter()
    rows = transfer_sizes(
        result.energy,
        settings,
        key=key_transfer,
        order_parameter=order_parameter,
        exchange=isinstance(model, EdwardsAndersonModel),
        progress=progress,
    )
    timings["transfer_s"] = time.perf_counter() - start

    start = time.perf_counter()
    for L, key_L in zip(
        settings.sizes, jax.random.split(key_reference, len(settings.sizes))
    ):
        selected = [row for row in rows if row["L"] == L]
        references = evaluation.reference_simulation(
            model,
            L,
            [row["T"] for row in selected],
            key=key_L,
            n_samples=settings.reference_samples,
            order_parameter=order_parameter,
            progress=progress,
        )
        for row, reference in zip(selected, references):
            row["reference"] = {"monte_carlo": reference}
    couplings = _coupling_check(result.energy, model, data.spins[:2000])
    timings["reference_s"] = time.perf_counter() - start

    trained_at = {"T": settings.temperature, "L": settings.L}
    payload = {"model": model.name, "trained_at": trained_at, "rows": rows}
    write_json(out / "transfer.json", payload, overwrite=overwrite)
    critical = None
    if isinstance(model, PottsModel):
        critical = exact.potts_critical_temperature(model.q, model.J)
    elif isinstance(model, ClockModel) and model.q == 4:
        critical = exact.ISING_TC * model.J / 2.0
    plot_transfer(
        rows, out / "transfer.png", trained_at=trained_at, critical_temperature=critical
    )
    energy_errors = [
        abs(r["e"] - r["reference"]["monte_carlo"]["e"])
        / abs(r["reference"]["monte_carlo"]["e"])
        for r in rows
    ]
    order_errors = [
        abs(r["abs_m"] - r["reference"]["monte_carlo"]["abs_m"]) for r in rows
    ]
    summary = {
        "settings": dataclasses.asdict(settings),
        "model": model.name,
        "order_parameter": order_parameter,
        "max_energy_relative_error": max(energy_errors),
        "max_order_parameter_deviation": max(order_errors),
        "effective_couplings": couplings,
        "fit_metrics": result.metrics,
        "timings_s": timings,
    }
    write_json(out / "summary.json", summary, overwrite=True)
    return summary
