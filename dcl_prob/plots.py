"""Plots of transfer results against exact and reference values.

The figures are matplotlib ``Figure`` objects written to files without pyplot.
Importing this module leaves pyplot's backend alone, so notebooks still show
their own figures.
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from dcl_prob import exact

__all__ = ["plot_transfer", "save_figure"]

_PANELS = (
    ("e", "energy per spin e"),
    ("c", "heat capacity per spin c"),
    ("abs_m", "|m|"),
    ("chi", "susceptibility per spin chi"),
)
# Axis label of the abs_m panel for each order parameter of a transfer row.
_ORDER_LABELS = {
    "magnetization": "|m|",
    "potts": "Potts order parameter",
    "clock": "clock magnetization |m|",
    "overlap": "overlap |q_ab| of two chains",
}


def save_figure(figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Save ``figure`` as a PNG atomically (temporary file, then rename) and close it.

    A failed run therefore never leaves half a PNG at ``path``.
    """
    path = os.fspath(path)
    temporary = os.path.join(
        os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp"
    )
    try:
        figure.savefig(temporary, dpi=dpi, format="png")
    finally:
        if figure.canvas.manager is not None:
            # A figure made through pyplot (ArviZ's plots are) stays open there
            # until it is closed.
            import matplotlib.pyplot as plt

            plt.close(figure)
    os.replace(temporary, path)


def plot_transfer(
    rows: list[dict],
    path: str | os.PathLike,
    *,
    trained_at: dict | None = None,
    kaufman_J: float | None = None,
    critical_temperature: float | None = None,
) -> None:
    """Plot e, c, the order parameter and chi against T, one colour per size.

    Points with error bars are the learned model. Where ``kaufman_J`` is given,
    solid lines are the exact Kaufman energy and heat capacity of each L;
    rows with a ``reference`` Monte Carlo value show it as open circles.
    ``trained_at`` (``{"T", "L"}``) marks the training temperature, and
    ``critical_temperature`` (or the Ising one of ``kaufman_J``) the
    infinite-lattice transition. The order parameter panel is labelled by the
    rows' ``order_parameter``.

    Args:
        rows: transfer rows with ``L``, ``T``, ``e``, ``c``, ``abs_m``,
            ``chi`` and their ``_err`` values, per spin with ``k_B = 1``.
        path: the PNG file to write (atomically).
        trained_at: ``{"T": T0, "L": L0}`` of the training data, or None.
        kaufman_J: coupling of the Ising model whose exact curves are drawn,
            or None for no exact curves.
        critical_temperature: transition temperature to mark (units of J/k_B).
    """
    sizes = sorted({row["L"] for row in rows})
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    figure = Figure(figsize=(10, 7.5))
    axes = figure.subplots(2, 2, sharex=True)
    t_min = min(row["T"] for row in rows)
    t_max = max(row["T"] for row in rows)
    grid = np.linspace(max(0.5, 0.9 * t_min), 1.05 * t_max, 200)

    for index, L in enumerate(sizes):
        colour = colours[index % len(colours)]
        selected = sorted((r for r in rows if r["L"] == L), key=lambda r: r["T"])
        T = np.array([r["T"] for r in selected])
        for ax, (name, label) in zip(axes.ravel(), _PANELS):
            values = np.array([r[name] for r in selected])
            errors = np.array([r[f"{name}_err"] for r in selected])
            ax.errorbar(
                T,
                values,
                yerr=errors,
                fmt="s",
                ms=4,
                capsize=2,
                color=colour,
                label=f"learned E, L={L}",
            )
            reference = [
                r.get("reference", {}).get("monte_carlo", {}) for r in selected
            ]
            if all(name in ref for ref in reference):
                ax.plot(
                    T,
                    [ref[name] for ref in reference],
                    "o",
                    mfc="none",
                    ms=8,
                    color=colour,
                    label=f"reference MC, L={L}",
                )
            if name == "abs_m":
                order = selected[0].get("order_parameter", "magnetization")
                label = _ORDER_LABELS.get(order, label)
            ax.set_ylabel(label)
        if kaufman_J is not None:
            result = exact.kaufman(L, grid, kaufman_J)
            axes[0, 0].plot(
                grid,
                result.energy,
                "-",
                color=colour,
                lw=1,
                label=f"Kaufman exact, L={L}",
            )
            axes[0, 1].plot(grid, result.heat_capacity, "-", color=colour, lw=1)

    if critical_temperature is None and kaufman_J is not None:
        critical_temperature = exact.ISING_TC * kaufman_J
    for ax in axes.ravel():
        if critical_temperature is not None:
            ax.axvline(
                critical_temperature,
                color="grey",
                ls=":",
                lw=1,
                label="T_c (infinite lattice)",
            )
        if trained_at:
            ax.axvline(
                trained_at["T"], color="black", ls="--", lw=1, label="training T0"
            )
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("temperature T")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    title = "Transfer of the learned energy"
    if trained_at:
        title += f" (trained at T0={trained_at['T']:g}, L={trained_at['L']})"
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)
