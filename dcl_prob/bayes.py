"""Posteriors over the physical couplings of lattice spin models, with NumPyro.

From configurations sampled at a known temperature ``T`` (k_B = 1, Boltzmann
weight ``exp(-E/T)``), :func:`posterior` samples the couplings of a model
with NUTS and returns an ``arviz.InferenceData``. The models, by name:

- ``"J"``, ``"J+J2"``, ``"J+J2+h"``: Ising model with nearest-neighbour
  ``J``, diagonal ``J2`` and field ``h`` (nested), spins -1/+1;
- ``"potts"``: ``E = -J sum_<ij> delta(s_i, s_j)`` with states ``0 .. q-1``;
- ``"spin-glass"``: Edwards-Anderson model with one coupling per bond,
  ``J_right[i, j]`` between ``(i, j)`` and ``(i, j+1)`` and ``J_down[i, j]``
  between ``(i, j)`` and ``(i+1, j)``, periodic.

Every coupling has the prior ``Normal(0, prior_scale)`` in energy units.
Two likelihoods:

- ``"pl"``: the pseudo-likelihood, the product over configurations and sites
  of the exact conditionals ``p(s_i | rest)``. It needs no partition function,
  but its posterior has the wrong width: too narrow far above ``T_c``, where
  each bond enters the conditionals of both its sites, and too wide near and
  below ``T_c``. ``adjusted=True`` (the default) applies the curvature
  adjustment of :mod:`dcl_prob.bayes_adjust`, which makes the intervals match
  the sandwich covariance of the pseudo-likelihood estimator.
- ``"dcl"``: the full likelihood with ``ln Z`` estimated by importance
  sampling from a fitted proposal, see :mod:`dcl_prob.bayes_dcl`.

The pointwise log likelihood (one value per configuration, the adjusted one
when adjusted) is in the ``log_likelihood`` group, so that
:func:`compare_models` can rank nested models by PSIS-LOO with
``arviz.compare``. :func:`posterior_predictive_check` simulates configurations
at posterior draws and :func:`plot_ppc` compares them with the data.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.bayes_adjust import (
    CurvatureAdjustment,
    curvature_adjustment,
    identity_adjustment,
)
from dcl_prob.bayes_dcl import MIN_PROPOSAL_ESS, dcl_data, proposal_ess
from dcl_prob.bayes_families import MODEL_NAMES, coupling_family
from dcl_prob.bayes_nuts import (
    coupling_model,
    inference_data,
    pointwise_log_likelihood,
    run_chain,
)
from dcl_prob.bayes_ppc import plot_ppc, posterior_predictive_check

with warnings.catch_warnings():
    # ArviZ 0.23 warns on import about its coming 1.x refactor.
    warnings.filterwarnings(
        "ignore", message=".*ArviZ is undergoing", category=FutureWarning
    )
    import arviz as az

__all__ = [
    "LIKELIHOODS",
    "MIN_PROPOSAL_ESS",
    "MODEL_NAMES",
    "CurvatureAdjustment",
    "compare_models",
    "coupling_family",
    "coupling_model",
    "curvature_adjustment",
    "plot_ppc",
    "posterior",
    "posterior_predictive_check",
]

LIKELIHOODS = ("pl", "dcl")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is invalid: pass an integer >= 1")
    if value < 1:
        raise ValueError(f"{name}={value} is invalid: pass an integer >= 1")
    return int(value)


def _check_positive_float(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is invalid: pass a number > 0") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}={value!r} is invalid: pass a finite number > 0")
    return number


def _check_spins(spins, family) -> np.ndarray:
    """Return the spins as int8 ``(n, L, L)`` after checking shape and values."""
    array = np.asarray(spins)
    if array.ndim != 3 or array.shape[1] != array.shape[2] or array.shape[1] < 2:
        raise ValueError(
            f"spins of shape {array.shape} are invalid: pass configurations of "
            "shape (n, L, L) with L >= 2"
        )
    if array.shape[0] < 2:
        raise ValueError(
            f"spins contain {array.shape[0]} configuration: pass at least 2"
        )
    if family.encoding == "pm1":
        allowed, fix = np.array([-1, 1]), "map 0/1 data with s = 2 * x - 1"
    else:
        allowed = np.arange(family.q)
        fix = f"pass states 0..{family.q - 1}, or the right q"
    values = np.unique(array)
    bad = np.setdiff1d(values, allowed)
    if bad.size:
        raise ValueError(
            f"spins contain the values {bad[:5].tolist()}, which model "
            f"{family.name!r} does not allow (allowed: {allowed.tolist()}); {fix}"
        )
    return array.astype(np.int8)


def posterior(
    spins,
    temperature: float,
    model: str = "J",
    *,
    key: jax.Array,
    likelihood: str = "pl",
    adjusted: bool | None = None,
    q: int | None = None,
    proposal=None,
    num_proposal_samples: int = 16384,
    proposal_key: jax.Array | None = None,
    block_size: int = 1,
    prior_scale: float = 1.0,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 4,
    target_accept_prob: float = 0.8,
) -> az.InferenceData:
    """Sample the posterior of the couplings of ``model`` given the spins, with NUTS.

    Args:
        spins: int8 array ``(n, L, L)``: -1/+1 spins, or Potts states
            ``0 .. q-1``; configurations are taken as independent (see
            ``block_size``).
        temperature: ``T`` of the data (k_B = 1).
        model: a name of ``MODEL_NAMES`` (module docstring).
        key: JAX PRNG key.
        likelihood: ``"pl"`` (pseudo-likelihood) or ``"dcl"`` (importance-
            sampled ``ln Z`` with ``proposal``).
        adjusted: apply the curvature adjustment to the pseudo-likelihood;
            None means True for ``"pl"``. ``"dcl"`` is a full likelihood and
            rejects True.
        q: number of Potts states, for ``model="potts"`` only.
        proposal: fitted distribution for ``"dcl"``, with ``sample(key,
            (K,))`` and normalized ``log_prob(s)``, such as
            ``dcl_prob.load_model(path).distribution()``.
        num_proposal_samples: ``K``, proposal samples for ``"dcl"``.
        proposal_key: PRNG key of the proposal samples; None derives it from
            ``key``. Posteriors that are compared should share it, because
            the error of the ``ln Z`` estimate enters the log likelihood
            of every configuration.
        block_size: consecutive configurations whose scores the adjustment
            sums, at least twice the autocorrelation time for correlated
            configurations; 1 for independent ones.
        prior_scale: standard deviation of the ``Normal(0, prior_scale)``
            prior of every coupling (energy units).
        num_warmup, num_samples, num_chains: NUTS settings; the chains run
            one after the other.
        target_accept_prob: NUTS step-size target.

    Returns:
        ``arviz.InferenceData`` with the groups ``posterior`` (the couplings,
        dims ``(chain, draw)``, plus ``(row, column)`` for the spin-glass
        bonds), ``sample_stats``, ``log_likelihood`` (``spins``, dims
        ``(chain, draw, config)``), ``observed_data`` (``spins``) and, when
        adjusted, ``constant_data`` with ``theta_hat``, ``H``, ``J`` and
        ``C``. ``posterior.attrs`` records the model, ``L``, ``q``, ``T``,
        the likelihood and the adjustment, and for ``"dcl"`` the proposal
        ESS and ``ln Z`` at the posterior mean.

    Raises:
        ValueError: for invalid spins, names, counts or options.

    Warns:
        UserWarning: when the proposal ESS is below ``MIN_PROPOSAL_ESS``,
            when NUTS diverged, or when the adjustment is poorly estimated.
    """
    spins_array = np.asarray(spins)
    L = int(spins_array.shape[-1]) if spins_array.ndim >= 2 else 0
    family = coupling_family(model, L=L, q=q)
    spins_array = _check_spins(spins_array, family)
    temperature = _check_positive_float("temperature", temperature)
    prior_scale = _check_positive_float("prior_scale", prior_scale)
    num_warmup = _check_positive_int("num_warmup", num_warmup)
    num_samples = _check_positive_int("num_samples", num_samples)
    num_chains = _check_positive_int("num_chains", num_chains)
    block_size = _check_positive_int("block_size", block_size)
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"likelihood={likelihood!r} is invalid: use one of {LIKELIHOODS}"
        )
    if adjusted is None:
        adjusted = likelihood == "pl"
    if likelihood == "dcl" and adjusted:
        raise ValueError(
            "adjusted=True applies to the pseudo-likelihood only; the 'dcl' "
            "likelihood is a full likelihood, so pass adjusted=None or False"
        )
    key_nuts, key_proposal = jax.random.split(key)

    adjustment = None
    if likelihood == "pl":
        features = family.pl_features(spins_array)
        if adjusted:
            adjustment = curvature_adjustment(
                family,
                features,
                temperature,
                prior_scale=prior_scale,
                block_size=block_size,
            )
        else:
            adjustment = identity_adjustment(family.dimension)
        data = (features, adjustment.mode, adjustment.matrix)
    else:
        if proposal is None:
            raise ValueError(
                "likelihood='dcl' needs a fitted proposal: pass proposal=... "
                "(for example load_model(path).distribution()) or use "
                "likelihood='pl'"
            )
        num_proposal_samples = _check_positive_int(
            "num_proposal_samples", num_proposal_samples
        )
        if proposal_key is None:
            proposal_key = key_proposal
        data = dcl_data(
            family, spins_array, proposal, num_proposal_samples, key=proposal_key
        )

    settings = {
        "family": family,
        "likelihood": likelihood,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "target_accept_prob": float(target_accept_prob),
    }
    samples, extra = _sample_chains(
        key_nuts, data, temperature, prior_scale, num_chains, settings
    )
    theta_draws = np.concatenate(
        [
            samples[name].reshape(num_chains * num_samples, -1)
            for name, _ in family.sites()
        ],
        axis=1,
    )
    pointwise = pointwise_log_likelihood(
        jnp.asarray(theta_draws),
        data,
        jnp.float32(temperature),
        family=family,
        likelihood=likelihood,
    )

    attrs = {
        "coupling_model": family.name,
        "L": L,
        "temperature": temperature,
        "likelihood": likelihood,
        "adjusted": int(bool(adjusted)),
        "block_size": block_size,
        "prior_scale": prior_scale,
        "num_divergences": _check_divergences(extra, target_accept_prob),
    }
    if family.name == "potts":
        attrs["q"] = family.q
    if likelihood == "dcl":
        attrs |= _check_proposal(theta_draws.mean(axis=0), data, temperature)
    return inference_data(
        family,
        samples,
        extra,
        np.asarray(pointwise).reshape(num_chains, num_samples, -1),
        spins_array,
        adjustment,
        attrs,
    )


def _sample_chains(key, data, temperature, prior_scale, num_chains, settings):
    """Run ``num_chains`` NUTS chains one after the other.

    Returns ``(samples, extra)``: dicts of NumPy arrays with leading axes
    ``(chain, draw)``.
    """
    chains = [
        run_chain(
            chain_key,
            data,
            jnp.float32(temperature),
            jnp.float32(prior_scale),
            **settings,
        )
        for chain_key in jax.random.split(key, num_chains)
    ]
    samples = {
        name: np.stack([np.asarray(chain[0][name]) for chain in chains])
        for name in chains[0][0]
    }
    extra = {
        name: np.stack([np.asarray(chain[1][name]) for chain in chains])
        for name in chains[0][1]
    }
    return samples, extra


def _check_divergences(extra, target_accept_prob) -> int:
    """Return the number of divergent transitions, warning when there are any."""
    n_divergent = int(np.sum(extra["diverging"]))
    if n_divergent:
        warnings.warn(
            f"NUTS had {n_divergent} divergent transitions, so the posterior may "
            f"be biased: raise target_accept_prob (now {target_accept_prob}) or "
            "num_warmup",
            UserWarning,
            stacklevel=3,
        )
    return n_divergent


def _check_proposal(theta_mean, data, temperature) -> dict:
    """Return the proposal ESS and ``ln Z`` at the posterior mean, warning when
    the ESS is below ``MIN_PROPOSAL_ESS``."""
    ess, log_z = proposal_ess(theta_mean, data, jnp.float32(temperature))
    n_proposal = int(data.proposal_log_prob.shape[0])
    if ess < MIN_PROPOSAL_ESS:
        warnings.warn(
            f"the importance-sampling estimate of ln Z has an effective sample "
            f"size of {ess:.1f} of {n_proposal} proposal samples at the "
            f"posterior mean (below {MIN_PROPOSAL_ESS}), so the 'dcl' posterior "
            "is unreliable: raise num_proposal_samples, use a proposal fitted "
            "closer to the data, or use likelihood='pl'",
            UserWarning,
            stacklevel=3,
        )
    return {
        "proposal_ess": ess,
        "num_proposal_samples": n_proposal,
        "log_z_at_posterior_mean": log_z,
    }


def compare_models(
    spins,
    temperature: float,
    models=("J", "J+J2", "J+J2+h"),
    *,
    key: jax.Array,
    posteriors: dict | None = None,
    **posterior_options,
):
    """Rank models of the same data by PSIS-LOO with ``arviz.compare``.

    LOO uses the pointwise log likelihood of each configuration, which for
    ``likelihood="pl"`` is the log pseudo-likelihood of that configuration
    (adjusted when adjusted). Its expected value scores the models by how
    well they predict each spin from the rest, the quantity that the pseudo-
    likelihood fits. For ``likelihood="dcl"`` it is the full log likelihood,
    which carries the importance-sampling error of ``ln Z`` once per
    configuration. Sharing the proposal samples between the models cancels
    most of that error in the differences.

    Args:
        spins, temperature: the data, as in :func:`posterior`.
        models: names of :func:`posterior` models, usually the nested Ising
            models ``"J"``, ``"J+J2"``, ``"J+J2+h"``.
        key: JAX PRNG key, split into one key per model and one for the
            proposal samples that every ``"dcl"`` posterior shares.
        posteriors: ``{name: InferenceData}`` already computed on the same
            data, reused instead of sampled again. For ``"dcl"`` they must
            have been computed with the same ``proposal_key``.
        **posterior_options: passed to :func:`posterior` for every model.

    Returns:
        ``pandas.DataFrame`` of ``arviz.compare``, best model first, with
        ``elpd_loo``, ``p_loo``, ``elpd_diff``, ``se``, ``dse``, ``weight``
        and ``warning``.
    """
    models = tuple(models)
    if len(models) < 2 or len(set(models)) != len(models):
        raise ValueError(
            f"models={models!r} is invalid: pass at least two distinct names of "
            f"{MODEL_NAMES}"
        )
    fits = dict(posteriors or {})
    key_proposal, *model_keys = jax.random.split(key, len(models) + 1)
    posterior_options.setdefault("proposal_key", key_proposal)
    for name, model_key in zip(models, model_keys):
        if name not in fits:
            fits[name] = posterior(
                spins, temperature, name, key=model_key, **posterior_options
            )
    return az.compare({name: fits[name] for name in models}, ic="loo")
