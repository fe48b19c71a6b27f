"""NumPyro models of spins: maximum likelihood of q and the Boltzmann potential.

* :func:`spin_data_model` observes spin data under an :class:`AutoregressiveSpins`
  whose network arrays are ``numpyro.param`` sites. Run through
  ``numpyro.infer.SVI`` with :func:`empty_guide`, it fits q by maximum
  likelihood.
* :func:`boltzmann_model` is the unnormalized Boltzmann distribution
  ``exp(-beta E(s))`` over spins. With :func:`autoregressive_guide` and
  ``numpyro.infer.TraceGraph_ELBO`` it fits q to that distribution by
  variational inference.
* :func:`logdensity_fn` is the same potential for BlackJAX samplers.

Spins are +-1 on an ``L x L`` lattice, the event shape of every spin site.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import eqx_module
from numpyro.distributions import constraints

from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins, spin_support

__all__ = [
    "autoregressive_guide",
    "boltzmann_model",
    "empty_guide",
    "fitted_network",
    "learnable_spins",
    "logdensity_fn",
    "spin_data_model",
]

PLATE_NAME = "configurations"
SITE_NAME = "spins"


def learnable_spins(
    name: str, net: AutoregressiveGRU, *, z2: bool = False, validate_args=None
) -> AutoregressiveSpins:
    """Register the arrays of ``net`` as one ``numpyro.param`` site and return q.

    Call inside a model or guide. The parameter site is ``name + "$params"``
    (the convention of ``numpyro.contrib.module.eqx_module``), and ``net``
    gives its initial value. Where no handler substitutes the site, as outside
    SVI and ``Predictive(params=...)``, q uses the arrays of ``net``.
    """
    module = eqx_module(name, net)
    return AutoregressiveSpins(module, z2=z2, validate_args=validate_args)


def _plate_size(spins, num_samples: int | None) -> int:
    if spins is not None:
        if jnp.ndim(spins) != 3:
            raise ValueError(
                f"spins of shape {jnp.shape(spins)} are invalid: pass a batch of "
                "configurations of shape (B, L, L)"
            )
        return int(jnp.shape(spins)[0])
    if num_samples is None or int(num_samples) < 1:
        raise ValueError(
            f"num_samples={num_samples!r} is invalid: without observed spins pass "
            "the number of configurations to draw, an integer >= 1"
        )
    return int(num_samples)


def spin_data_model(
    spins=None,
    *,
    net: AutoregressiveGRU,
    num_samples: int | None = None,
    z2: bool = False,
    per_spin: bool = False,
    name: str = "q",
    validate_args=None,
):
    """Observe spins ``(B, L, L)`` under a q whose network arrays are learnable.

    The site ``"spins"`` sits in the plate ``"configurations"`` of size ``B``.
    Through ``numpyro.infer.SVI`` with :func:`empty_guide` and ``Trace_ELBO``,
    the loss is ``-sum_b log q(s_b)``. With ``per_spin=True`` the log
    likelihood is scaled by ``1 / (B N)`` on ``N = L * L`` sites, so that the
    loss equals :func:`dcl_prob.objectives.negative_log_likelihood`, the
    native loss of :func:`dcl_prob.fit.train_q`.

    Without ``spins`` the model draws ``num_samples`` configurations from q,
    for use with ``numpyro.infer.Predictive``.

    Returns:
        the observed or drawn spins, int8 or the dtype of ``spins``.
    """
    batch_size = _plate_size(spins, num_samples)
    q = learnable_spins(name, net, z2=z2, validate_args=validate_args)
    scale = 1.0 / (batch_size * net.L * net.L) if per_spin else 1.0
    with numpyro.handlers.scale(scale=scale):
        with numpyro.plate(PLATE_NAME, batch_size):
            return numpyro.sample(SITE_NAME, q, obs=spins)


def empty_guide(*args, **kwargs):
    """Guide without latent sites, for models whose sample sites are all observed."""


def _check_beta(beta) -> None:
    if isinstance(beta, jax.core.Tracer):
        return
    values = np.asarray(beta, dtype=np.float64)
    if values.ndim != 0 or not np.isfinite(values):
        raise ValueError(
            f"beta={beta!r} is invalid: pass one finite inverse temperature 1 / T"
        )


def logdensity_fn(
    energy: Callable[[jax.Array], jax.Array], beta
) -> Callable[[jax.Array], jax.Array]:
    """Build the unnormalized Boltzmann log density ``s -> -beta * energy(s)``.

    ``energy`` maps spins ``(..., L, L)`` to total energies ``(...)``, as
    ``IsingModel().energy`` and ``ExtensiveEnergy`` do. The returned function
    maps one configuration ``(L, L)`` to a float32 scalar, which is the
    ``logdensity_fn`` that BlackJAX samplers expect. It also accepts a batch
    ``(..., L, L)`` and returns shape ``(...)``, so ``jax.vmap`` over it works.
    """
    _check_beta(beta)

    def log_density(spins: jax.Array) -> jax.Array:
        return -jnp.asarray(beta, jnp.float32) * energy(spins).astype(jnp.float32)

    return log_density


def boltzmann_model(
    energy: Callable[[jax.Array], jax.Array],
    beta,
    L: int,
    spins=None,
    *,
    num_samples: int = 1,
):
    """Boltzmann distribution ``p(s) ~ exp(-beta * energy(s))`` on ``L x L`` spins.

    The site ``"spins"``, in the plate ``"configurations"``, has a flat improper
    prior over +-1 configurations (``ImproperUniform``, log density 0), and
    the factor ``"boltzmann"`` adds ``-beta * energy(s)`` for each
    configuration. The model's joint log density is therefore the unnormalized
    log Boltzmann weight, and its normalizer is the partition function ``Z``.

    Uses:

    * variational inference: SVI with :func:`autoregressive_guide` and
      ``TraceGraph_ELBO``. The loss is ``sum_b [log q(s_b) + beta E(s_b)]``
      over the ``num_samples`` guide draws ``s_b``, an estimate of
      ``num_samples * beta * F_q >= -num_samples * log Z`` with ``F_q`` the
      variational free energy of q. ``Trace_ELBO`` has no score-function term,
      so its gradient for this discrete site is wrong (zero in expectation).
    * ``Predictive`` with a guide or with ``posterior_samples`` of
      ``"spins"``: pass ``return_sites=["spins", "energy"]``, because by
      default it returns only sites the guide does not sample.
    * observed ``spins=``, where the model's log density, for example from
      ``numpyro.infer.util.log_density``, is ``-beta * sum_b energy(s_b)``.

    The deterministic site ``"energy"`` records ``energy(s)`` of every
    configuration.

    The improper prior cannot be sampled, so ``Predictive`` of this model
    alone, without a guide or samples, raises ``NotImplementedError``.

    Returns:
        the spins, shape ``(num_samples, L, L)``, or the observed ``spins``.
    """
    _check_beta(beta)
    batch_size = _plate_size(spins, num_samples)
    if spins is not None and tuple(jnp.shape(spins)[-2:]) != (L, L):
        raise ValueError(
            f"spins of shape {jnp.shape(spins)} do not match L={L}: pass (B, {L}, {L})"
        )
    flat_prior = dist.ImproperUniform(
        constraints.independent(spin_support, 2), (), event_shape=(L, L)
    )
    with numpyro.plate(PLATE_NAME, batch_size):
        s = numpyro.sample(SITE_NAME, flat_prior, obs=spins)
        energies = numpyro.deterministic("energy", energy(s))
        numpyro.factor("boltzmann", -beta * energies)
    return s


def autoregressive_guide(
    net: AutoregressiveGRU, *, z2: bool = False, name: str = "q"
) -> Callable:
    """Build a guide for :func:`boltzmann_model` that draws spins from a learnable q.

    The guide takes the arguments of :func:`boltzmann_model`, registers the
    arrays of ``net`` as the parameter site ``name + "$params"`` and draws
    ``num_samples`` configurations in the plate ``"configurations"``. Read the
    fitted network with :func:`fitted_network`.

    Args:
        net: the initial network of q, for ``(L, L)`` spins.
        z2: symmetrise q under the global spin flip.
        name: prefix of the parameter site.

    Returns:
        ``guide(energy, beta, L, spins=None, *, num_samples=1)``, which samples
        the site ``"spins"`` with shape ``(num_samples, L, L)``.
    """

    def guide(energy, beta, L, spins=None, *, num_samples: int = 1):
        del energy, beta
        if spins is not None:
            raise ValueError(
                "the guide draws the spins, so the model must not observe them: "
                "call SVI without spins, or use log_density for observed spins"
            )
        if L != net.L:
            raise ValueError(
                f"L={L} does not match the guide network, which has L={net.L}"
            )
        q = learnable_spins(name, net, z2=z2)
        with numpyro.plate(PLATE_NAME, num_samples):
            numpyro.sample(SITE_NAME, q)

    return guide


def fitted_network(
    params: dict, net: AutoregressiveGRU, *, name: str = "q"
) -> AutoregressiveGRU:
    """Return ``net`` with its arrays replaced by the SVI parameters ``params``.

    ``params`` is the output of ``svi.get_params(state)``, ``net`` the network
    given to :func:`spin_data_model` or :func:`autoregressive_guide`.
    """
    key = name + "$params"
    if key not in params:
        raise KeyError(
            f"parameter site {key!r} not found in params with sites "
            f"{sorted(params)}; pass the name used in the model or guide"
        )
    _, static = eqx.partition(net, eqx.is_inexact_array)
    return eqx.combine(params[key], static)
