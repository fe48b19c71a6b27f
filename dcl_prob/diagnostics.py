"""Convergence diagnostics of observable traces through ArviZ.

Traces have dims ``(chain, draw)``. R-hat, bulk and tail ESS and MCSE come
from ArviZ; this module only arranges the data and collects the numbers.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import arviz as az

logger = logging.getLogger(__name__)

__all__ = [
    "chain_jackknife",
    "integrated_autocorrelation_time",
    "plot_diagnostics",
    "summarize_traces",
    "to_inference_data",
]


@functools.cache
def arviz():
    """Import ArviZ on first use: it takes seconds, and most commands never need it."""
    with warnings.catch_warnings():
        # ArviZ 0.23 warns on import about its coming 1.x refactor.
        warnings.filterwarnings(
            "ignore", message=".*ArviZ is undergoing", category=FutureWarning
        )
        import arviz as az

    return az


def to_inference_data(
    traces: dict, sample_stats: dict | None = None
) -> az.InferenceData:
    """Wrap observable traces ``{name: (chain, draw) array}`` as ``InferenceData``.

    The traces go to the ``posterior`` group, ``sample_stats`` (for example the
    acceptance rate) to the ``sample_stats`` group.
    """
    posterior = {name: np.asarray(value, np.float64) for name, value in traces.items()}
    stats = None
    if sample_stats:
        stats = {name: np.asarray(v, np.float64) for name, v in sample_stats.items()}
    return arviz().from_dict(posterior=posterior, sample_stats=stats)


def summarize_traces(traces: dict) -> dict:
    """Mean, MCSE, R-hat, bulk and tail ESS of each trace.

    Args:
        traces: ``{name: array of shape (chain, draw)}``.

    Returns:
        ``{name: {"mean", "mcse", "rhat", "ess_bulk", "ess_tail", "tau_int"}}``
        as floats; ``tau_int`` is in draws (see
        :func:`integrated_autocorrelation_time`).
    """
    az = arviz()
    idata = to_inference_data(traces)
    posterior = idata.posterior
    rhat = az.rhat(posterior)
    ess_bulk = az.ess(posterior, method="bulk")
    ess_tail = az.ess(posterior, method="tail")
    mcse = az.mcse(posterior, method="mean")
    summary = {}
    for name in traces:
        summary[name] = {
            "mean": float(posterior[name].mean()),
            "mcse": float(mcse[name]),
            "rhat": float(rhat[name]),
            "ess_bulk": float(ess_bulk[name]),
            "ess_tail": float(ess_tail[name]),
            "tau_int": posterior[name].size / float(ess_bulk[name]),
        }
    return summary


def integrated_autocorrelation_time(trace: np.ndarray) -> float:
    """Integrated autocorrelation time of a ``(chain, draw)`` trace, in draws.

    Uses ArviZ's convention ``tau = chains * draws / ess_bulk``, so that
    ``tau = 1`` for independent draws and a sample thinned every ``tau``
    draws is about as informative as independent draws. A constant trace
    returns 1.
    """
    trace = np.asarray(trace, dtype=np.float64)
    if trace.ndim != 2:
        raise ValueError(
            f"trace of shape {trace.shape} is invalid: expected (chain, draw)"
        )
    if np.ptp(trace) == 0:
        return 1.0
    ess = float(np.squeeze(arviz().ess(trace, method="bulk")))
    if not math.isfinite(ess) or ess <= 0:
        logger.warning(
            "ArviZ returned ess_bulk=%s for a trace of shape %s; using the "
            "whole trace length as tau",
            ess,
            trace.shape,
        )
        return float(trace.shape[1])
    return trace.size / ess


def plot_diagnostics(idata: az.InferenceData, path: str | os.PathLike) -> None:
    """Save ArviZ trace and rank plots of every variable of ``idata`` to a PNG.

    ``path`` gets the trace plot; the rank plot goes beside it with the suffix
    ``_rank`` (``trace.png`` and ``trace_rank.png``). Both figures are closed
    after saving, so a notebook does not show them again.

    Args:
        idata: traces with dims ``(chain, draw)``, as from
            :func:`to_inference_data`.
        path: the PNG file of the trace plot.
    """
    from dcl_prob.plots import save_figure

    az = arviz()
    path = os.fspath(path)
    root, extension = os.path.splitext(path)
    axes = az.plot_trace(idata, compact=True)
    figure = np.ravel(axes)[0].figure
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    axes = az.plot_rank(idata)
    figure = np.ravel(axes)[0].figure
    figure.tight_layout()
    save_figure(figure, f"{root}_rank{extension or '.png'}", dpi=100)


def chain_jackknife(statistic, *traces: np.ndarray) -> tuple[float, float]:
    """Estimate and jackknife error of a non-linear statistic over chains.

    Each chain is left out in turn; this is valid when chains are independent,
    whatever the autocorrelation inside each chain.

    Args:
        statistic: function of arrays of shape ``(chain, draw)`` to a float.
        traces: arrays ``(chain, draw)``; at least two chains.

    Returns:
        ``(estimate on all chains, standard error)``.
    """
    n_chains = traces[0].shape[0]
    full = float(statistic(*traces))
    if n_chains < 2:
        return full, float("nan")
    leave_one_out = np.array(
        [
            statistic(*(np.delete(trace, k, axis=0) for trace in traces))
            for k in range(n_chains)
        ]
    )
    error = np.sqrt(
        (n_chains - 1) * np.mean((leave_one_out - leave_one_out.mean()) ** 2)
    )
    return full, float(error)
