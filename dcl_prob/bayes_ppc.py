"""Posterior predictive checks of the coupling posteriors of :mod:`dcl_prob.bayes`.

For a few posterior draws, :func:`posterior_predictive_check` simulates
configurations of the model with those couplings with
:func:`dcl_prob.montecarlo.simulate`, and compares three statistics of the
replicas with the same statistics of the data:

- ``energy``: energy per spin ``E(s) / N`` at the posterior-mean couplings,
  one fixed function for data and replicas;
- ``abs_m``: the order parameter, ``|m|`` for Ising spins and the Potts order
  parameter of :class:`dcl_prob.hamiltonians.PottsModel`;
- ``correlation``: ``C(r)`` for ``r = 0 .. L // 2`` along both lattice axes,
  ``<s_i s_{i+r}>`` for Ising spins and ``(q P(s_i = s_{i+r}) - 1) / (q - 1)``
  for Potts states.

:func:`plot_ppc` draws the histograms and the correlation function.
"""

from __future__ import annotations

import logging
import os
import warnings

import jax
import numpy as np

from dcl_prob.bayes_families import IsingCouplings, PottsCouplings, coupling_family
from dcl_prob.montecarlo import simulate

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=".*ArviZ is undergoing", category=FutureWarning
    )
    import arviz as az

__all__ = ["family_from_idata", "plot_ppc", "posterior_predictive_check"]

logger = logging.getLogger(__name__)

_STATISTICS = ("energy", "abs_m", "correlation")


def family_from_idata(idata):
    """Rebuild the coupling family recorded by :func:`dcl_prob.bayes.posterior`.

    Args:
        idata: an ``InferenceData`` whose ``posterior.attrs`` contain
            ``coupling_model``, ``L`` and, for Potts, ``q``.

    Returns:
        The family of :func:`dcl_prob.bayes_families.coupling_family`.

    Raises:
        ValueError: if ``idata`` does not come from ``posterior``.
    """
    attrs = idata.posterior.attrs
    if "coupling_model" not in attrs:
        raise ValueError(
            "idata has no 'coupling_model' attribute in its posterior group; pass "
            "the output of dcl_prob.bayes.posterior"
        )
    q = attrs.get("q")
    return coupling_family(
        attrs["coupling_model"], L=int(attrs["L"]), q=None if q is None else int(q)
    )


def _simulation_model(family, values: dict, temperature: float):
    """Return ``(model, T)`` to simulate couplings ``values`` at ``temperature``.

    With a single coupling ``J`` the Boltzmann weight depends on ``J / T``
    only, so the model with ``J = +-1`` at ``T / |J|`` has the same
    distribution. The samplers compile once per model, and this keeps one
    model for every draw.
    """
    single = isinstance(family, PottsCouplings) or (
        isinstance(family, IsingCouplings) and family.couplings == ("J",)
    )
    if single:
        J = float(values["J"])
        if abs(J) > 1e-6 * temperature:
            return family.hamiltonian({"J": float(np.sign(J))}), temperature / abs(J)
    return family.hamiltonian(values), temperature


def _default_sampler(family) -> str | None:
    """Metropolis for the Ising models, heat bath for Potts (any sign of J),
    the project default (parallel tempering) for the spin glass."""
    if isinstance(family, IsingCouplings):
        return "checkerboard"
    if isinstance(family, PottsCouplings):
        return "heat-bath"
    return None


def _statistics(family, spins, theta_mean, distances) -> dict:
    n_sites = spins.shape[-1] * spins.shape[-2]
    energy = -np.asarray(family.statistics(spins)) @ theta_mean / n_sites
    return {
        "energy": energy,
        "abs_m": np.asarray(family.order_parameter(spins)),
        "correlation": np.asarray(family.correlation(spins, distances)),
    }


def posterior_predictive_check(
    idata,
    *,
    key: jax.Array,
    num_draws: int = 4,
    num_configs: int | None = None,
    sampler: str | None = None,
    n_chains: int = 16,
    burn_in: int = 200,
    pilot_steps: int = 256,
):
    """Simulate configurations at posterior draws and add the PPC statistics.

    Args:
        idata: output of :func:`dcl_prob.bayes.posterior`.
        key: JAX PRNG key; it picks the draws and seeds the simulations.
        num_draws: posterior draws to simulate, picked at random without
            replacement.
        num_configs: configurations per draw; None uses
            ``min(n_data, 256)``.
        sampler: sampler of :func:`dcl_prob.montecarlo.simulate`; None
            uses Metropolis for the Ising models, the heat bath for Potts and
            parallel tempering for the spin glass.
        n_chains, burn_in, pilot_steps: passed to ``simulate``, which thins
            the chains by their measured autocorrelation time.

    The Ising ``J`` and Potts models reuse one compiled sampler for every
    draw (see :func:`_simulation_model`). NOTE: the other models build a new
    Hamiltonian per draw, and the sampler compiles again for each, which
    takes seconds per draw (more with parallel tempering for the spin glass).

    Returns:
        A new ``InferenceData`` with the groups of ``idata``, a
        ``posterior_predictive`` group with ``energy`` and ``abs_m`` (dims
        ``(chain, draw, replica)``, one chain of ``num_draws`` draws) and
        ``correlation`` (``(chain, draw, replica, distance)``), and the same
        statistics of the data added to ``observed_data``. The statistics
        are described in the module docstring.
    """
    family = family_from_idata(idata)
    attrs = idata.posterior.attrs
    temperature = float(attrs["temperature"])
    L = int(attrs["L"])
    spins = np.asarray(idata.observed_data["spins"].values)
    num_configs = min(len(spins), 256) if num_configs is None else int(num_configs)
    sampler = _default_sampler(family) if sampler is None else sampler

    stacked = idata.posterior.stack(sample=("chain", "draw"))
    total = stacked.sizes["sample"]
    if not 1 <= num_draws <= total:
        raise ValueError(
            f"num_draws={num_draws} is invalid: pass 1 to {total}, the number of "
            "posterior draws"
        )
    draw_values = {
        name: np.moveaxis(np.asarray(stacked[name].values), -1, 0)
        for name, _ in family.sites()
    }
    theta_mean = np.concatenate(
        [draw_values[name].mean(axis=0).reshape(-1) for name, _ in family.sites()]
    )
    key_choice, key_simulate = jax.random.split(key)
    indices = np.asarray(
        jax.random.choice(key_choice, total, (num_draws,), replace=False)
    )
    distances = np.arange(L // 2 + 1)

    replicas = {name: [] for name in _STATISTICS}
    for k, index in enumerate(indices):
        values = {name: draw_values[name][index] for name in draw_values}
        model, run_temperature = _simulation_model(family, values, temperature)
        result = simulate(
            model,
            L,
            run_temperature,
            num_configs,
            key=jax.random.fold_in(key_simulate, k),
            sampler=sampler,
            n_chains=min(n_chains, num_configs),
            burn_in=burn_in,
            pilot_steps=pilot_steps,
            progress=False,
        )
        statistics = _statistics(family, result.spins, theta_mean, distances)
        for name in _STATISTICS:
            replicas[name].append(statistics[name])
        logger.info("posterior predictive draw %d of %d simulated", k + 1, num_draws)

    predictive = az.dict_to_dataset(
        {name: np.stack(values)[None] for name, values in replicas.items()},
        coords={"distance": distances},
        dims={
            "energy": ["replica"],
            "abs_m": ["replica"],
            "correlation": ["replica", "distance"],
        },
    )
    predictive.attrs.update(
        {
            "posterior_sample_indices": indices.tolist(),
            "sampler": str(sampler),
            "num_configs": num_configs,
        }
    )
    observed = _statistics(family, spins, theta_mean, distances)
    observed_data = idata.observed_data.assign(
        energy=(("config",), observed["energy"]),
        abs_m=(("config",), observed["abs_m"]),
        correlation=(("config", "distance"), observed["correlation"]),
    ).assign_coords(distance=distances)
    groups = {name: idata[name] for name in idata.groups()}
    groups |= {"posterior_predictive": predictive, "observed_data": observed_data}
    return az.InferenceData(**groups)


def plot_ppc(idata, path: str | os.PathLike) -> None:
    """Plot the data against the replicas of :func:`posterior_predictive_check` (PNG).

    Panels: ``arviz.plot_ppc`` densities of the energy per spin and of
    ``|m|`` (one per posterior draw, their mean and the data), and ``C(r)``
    of the data with two standard errors of the mean against the mean of
    each draw's replicas.
    """
    from matplotlib.figure import Figure

    from dcl_prob.plots import save_figure

    if "posterior_predictive" not in idata.groups():
        raise ValueError(
            "idata has no posterior_predictive group; run "
            "posterior_predictive_check(idata, key=...) first"
        )
    observed = idata.observed_data
    predictive = idata.posterior_predictive
    figure = Figure(figsize=(13, 3.8))
    axes = figure.subplots(1, 3)
    attrs = idata.posterior.attrs
    order_label = "Potts order parameter" if attrs.get("q") is not None else "|m|"
    labels = {"energy": "energy per spin E/N", "abs_m": order_label}
    for ax, name in zip(axes[:2], ("energy", "abs_m")):
        # ArviZ draws one density per posterior draw, their mean and the data.
        az.plot_ppc(
            idata, var_names=[name], kind="kde", ax=ax, legend=True, random_seed=0
        )
        ax.set_xlabel(labels[name])
        ax.set_title("")

    distance = np.asarray(observed["distance"].values)
    data = np.asarray(observed["correlation"].values)
    error = 2.0 * data.std(axis=0, ddof=1) / np.sqrt(len(data))
    ax = axes[2]
    ax.errorbar(distance, data.mean(axis=0), yerr=error, fmt="o", label="data")
    for index, replica in enumerate(np.asarray(predictive["correlation"].values)[0]):
        ax.plot(
            distance,
            replica.mean(axis=0),
            "-",
            color="C1",
            alpha=0.7,
            label="posterior draws" if index == 0 else None,
        )
    ax.set_xlabel("distance r")
    ax.set_ylabel("correlation C(r)")
    ax.legend(fontsize=8)
    figure.suptitle(
        f"Posterior predictive check: model {attrs.get('coupling_model')} at "
        f"T={float(attrs.get('temperature', float('nan'))):g}, "
        f"{predictive.sizes['draw']} posterior draws"
    )
    figure.tight_layout()
    save_figure(figure, path)
