"""Fit the autoregressive model q and the extensive energy E to spin data.

``fit`` receives configurations and the training temperature ``T0`` only, never
a Hamiltonian. It runs two phases:

1. **q by maximum likelihood** on the data.
2. **E by consistency**: the pseudo-likelihood of the data under
   ``exp(-E / T0)`` (each spin's exact conditional, a local identity between
   data and E) plus ``lv_weight`` times the log-variance divergence
   ``Var_r[log q + E / T0]`` over a reference set ``r`` of data, samples of q
   and uniformly random configurations (the global identity between q and E).
   Both terms vanish at the same solution, ``log p = -E / T0 - log Z``.

With ``joint=True`` a third phase trains q and E together on the sum of the
likelihood of q, the pseudo-likelihood and the log-variance, so that q is
also pulled toward ``exp(-E / T0)``.

The data are Ising spins +-1 or Potts (clock) states ``0 .. q-1``, as set by
:attr:`FitConfig.n_states`. For ``q`` states q has categorical conditionals,
the pseudo-likelihood uses each site's exact conditional over its ``q``
values, and the uniform reference configurations draw each state with
probability ``1 / q``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.fit_config import FitConfig, check_options, check_spins
from dcl_prob.nn.ednn import ExtensiveEnergy, fix_energy_offset
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.objectives import (
    log_variance,
    negative_log_likelihood,
    pseudo_likelihood_loss,
)
from dcl_prob.training import train

__all__ = ["FitConfig", "FitResult", "fit", "make_networks", "train_q"]

logger = logging.getLogger(__name__)


class FitResult(NamedTuple):
    """Fitted networks and training record."""

    q_net: AutoregressiveGRU  # the autoregressive model
    energy: ExtensiveEnergy  # the energy, constant fixed to zero mean on random spins
    temperature: float  # training temperature T0
    config: FitConfig
    history: dict  # per-phase lists of per-chunk diagnostics
    metrics: dict  # final held-out diagnostics

    def distribution(self) -> AutoregressiveSpins:
        """Return the fitted q as a NumPyro distribution."""
        return AutoregressiveSpins(
            self.q_net,
            z2=self.config.q_z2,
            colour_symmetric=self.config.q_colour_symmetric,
        )


def make_networks(L: int, config: FitConfig, *, key: jax.Array):
    """Initial ``(AutoregressiveGRU, ExtensiveEnergy)`` for lattice size ``L``.

    ``config.n_states`` must be a number (not None); :func:`fit` stores the
    inferred one in the config of its result. With ``energy_kind="bonds"``
    the energy starts with zero couplings ``(2, L, L)`` for this ``L``.
    """
    if config.n_states is None:
        raise ValueError(
            "config.n_states is None: pass the number of states (2 for Ising "
            "spins), or let fit infer it from the data"
        )
    check_options(config, config.n_states)
    key_q, key_e = jax.random.split(key)
    n_states = int(config.n_states)
    q_net = AutoregressiveGRU(
        L,
        config.hidden_size,
        key=key_q,
        position_encoding=config.q_position,
        n_states=n_states,
    )
    energy = ExtensiveEnergy(
        config.focus,
        config.context,
        config.energy_hidden,
        config.z2 if n_states == 2 else None,
        key=key_e,
        n_states=n_states,
        colour_symmetric=config.colour_symmetric,
        bond_couplings=L if config.energy_kind == "bonds" else None,
    )
    energy.geometry(L)  # raises early if L is not a multiple of the focus
    return q_net, energy


def _log_q(
    q_net: AutoregressiveGRU, s: jax.Array, z2: bool, colour_symmetric: bool = False
) -> jax.Array:
    if colour_symmetric:
        return AutoregressiveSpins(q_net, colour_symmetric=True).log_prob(s)
    log_q = q_net.log_prob(s)
    if z2:
        log_q = jnp.logaddexp(log_q, q_net.log_prob(-s)) - math.log(2.0)
    return log_q


def _batched_log_q(q_net, s, config, batch=1024) -> jax.Array:
    fn = eqx.filter_jit(_log_q)
    z2, colour = config.q_z2, config.q_colour_symmetric
    parts = [fn(q_net, s[i : i + batch], z2, colour) for i in range(0, len(s), batch)]
    return jnp.concatenate(parts)


def _uniform_configurations(key, n, L, n_states) -> jax.Array:
    """``n`` uniformly random configurations ``(n, L, L)``, int8."""
    if n_states == 2:
        return jnp.where(jax.random.bernoulli(key, 0.5, (n, L, L)), 1, -1).astype(
            jnp.int8
        )
    return jax.random.randint(key, (n, L, L), 0, n_states).astype(jnp.int8)


def _random_batch(key, pool, size):
    index = jax.random.randint(key, (size,), 0, pool.shape[0])
    return pool[index]


def _split_validation(spins, fraction, key):
    n = spins.shape[0]
    n_valid = int(round(fraction * n)) if n >= 20 else 0
    order = np.asarray(jax.random.permutation(key, n))
    return spins[order[n_valid:]], spins[order[:n_valid]]


def train_q(
    q_net: AutoregressiveGRU,
    spins: jax.Array,
    config: FitConfig,
    *,
    key: jax.Array,
    progress: bool = True,
    on_chunk: Callable | None = None,
    restore: Callable | None = None,
) -> tuple[AutoregressiveGRU, list]:
    """Train q by maximum likelihood on spins ``(n, L, L)``.

    ``on_chunk`` and ``restore`` are passed to :func:`dcl_prob.training.train`.

    Returns:
        ``(q_net, history)`` with the per-chunk mean negative log-likelihood
        per spin.
    """
    n_sites = spins.shape[-1] * spins.shape[-2]

    def q_loss(net, data, key):
        batch = _random_batch(key, data, config.batch_size)
        if config.q_z2 or config.q_colour_symmetric:
            log_q = _log_q(net, batch, config.q_z2, config.q_colour_symmetric)
            return -jnp.mean(log_q) / n_sites, {}
        return negative_log_likelihood(net, batch), {}

    return train(
        q_net,
        q_loss,
        spins,
        config.q_steps,
        key=key,
        learning_rate=config.q_learning_rate,
        chunk_size=config.chunk_size,
        description="fit q (NLL/spin)",
        progress=progress,
        on_chunk=on_chunk,
        restore=restore,
    )


def fit(
    spins,
    temperature: float,
    *,
    key: jax.Array,
    config: FitConfig | None = None,
    progress: bool = True,
    checkpoints=None,
) -> FitResult:
    """Learn q and E from configurations sampled at one temperature.

    Args:
        spins: int8 configurations ``(n, L, L)``: Ising spins +-1, or Potts
            states ``0 .. q-1`` with ``config.n_states = q``.
        temperature: the temperature ``T0`` the data were sampled at.
        key: PRNG key (keyword only).
        config: hyperparameters; defaults to :class:`FitConfig`.
        progress: show progress bars with the losses.
        checkpoints: an object with ``save(phase, step, model, opt_state,
            last=...)``, called after every chunk of every phase, and
            ``restore(phase, model, opt_state) -> (step, model, opt_state)``,
            called when a phase starts, such as
            :class:`dcl_prob.model_io.Checkpointer`. A fit restored from
            the checkpoints of an interrupted run with the same data, config
            and key ends with the same parameters as an uninterrupted run.

    Returns:
        A :class:`FitResult`, whose config contains the number of states used.

    Raises:
        ValueError: for data that are not ``(n, L, L)`` configurations of the
            states of ``config.n_states``, an invalid temperature, or options
            that do not fit the number of states.
    """
    config = config or FitConfig()
    spins = jnp.asarray(spins)
    if spins.ndim != 3 or spins.shape[1] != spins.shape[2]:
        raise ValueError(
            f"spins of shape {tuple(spins.shape)} are invalid: fit needs (n, L, L)"
        )
    n_states = check_spins(np.asarray(spins), config.n_states)
    check_options(config, n_states)
    config = dataclasses.replace(config, n_states=n_states)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature={temperature!r} is invalid: it must be finite and > 0"
        )
    L = spins.shape[-1]
    n_sites = L * L
    T0 = float(temperature)
    key_init, key_split, key_q, key_pool, key_e, key_joint = jax.random.split(key, 6)
    q_net, energy = make_networks(L, config, key=key_init)
    train_spins, valid_spins = _split_validation(
        spins, config.validation_fraction, key_split
    )
    history = {}

    def hooks(phase):
        if checkpoints is None:
            return {}

        def save(step, model, opt_state, metrics, last):
            checkpoints.save(phase, step, model, opt_state, last=last)

        def restore(model, opt_state):
            return checkpoints.restore(phase, model, opt_state)

        return {"on_chunk": save, "restore": restore}

    # Phase 1: q by maximum likelihood.
    q_net, history["q"] = train_q(
        q_net, train_spins, config, key=key_q, progress=progress, **hooks("q")
    )

    # Reference pools for the log-variance term; q is frozen in this phase.
    key_sample, key_uniform = jax.random.split(key_pool)
    q_dist = AutoregressiveSpins(
        q_net, z2=config.q_z2, colour_symmetric=config.q_colour_symmetric
    )
    q_pool = eqx.filter_jit(lambda d, k: d.sample(k, (config.n_q_samples,)))(
        q_dist, key_sample
    )
    uniform_pool = _uniform_configurations(key_uniform, config.n_q_samples, L, n_states)
    pools = {
        "data": (train_spins, _batched_log_q(q_net, train_spins, config)),
        "q": (q_pool, _batched_log_q(q_net, q_pool, config)),
        "uniform": (uniform_pool, _batched_log_q(q_net, uniform_pool, config)),
    }
    sizes = [
        max(1, int(round(f * config.batch_size))) for f in config.reference_fractions
    ]

    def reference_batch(pools, key):
        keys = jax.random.split(key, 3)
        configs, log_qs = [], []
        for k, name, size in zip(keys, ("data", "q", "uniform"), sizes):
            index = jax.random.randint(k, (size,), 0, pools[name][0].shape[0])
            configs.append(pools[name][0][index])
            log_qs.append(pools[name][1][index])
        return jnp.concatenate(configs), jnp.concatenate(log_qs)

    # Phase 2: E by pseudo-likelihood plus log-variance against q.
    def energy_loss(model, pools, key):
        key_pl, key_ref = jax.random.split(key)
        batch = _random_batch(key_pl, pools["data"][0], config.batch_size)
        pl = pseudo_likelihood_loss(model, batch, T0)
        reference, log_q = reference_batch(pools, key_ref)
        lv = log_variance(log_q, model(reference), T0, n_sites)
        return pl + config.lv_weight * lv, {"pl": pl, "logvar": lv}

    energy, history["energy"] = train(
        energy,
        energy_loss,
        pools,
        config.energy_steps,
        key=key_e,
        learning_rate=config.energy_learning_rate,
        chunk_size=config.chunk_size,
        description="fit E (PL + logvar)",
        progress=progress,
        **hooks("energy"),
    )

    if config.joint:
        q_net, energy, history["joint"] = _fit_joint(
            q_net,
            energy,
            train_spins,
            T0,
            config,
            key_joint,
            progress,
            hooks("joint"),
        )

    energy = fix_energy_offset(energy)
    metrics = _held_out_metrics(q_net, energy, valid_spins, T0, config)
    logger.info("fit finished: %s", metrics)
    return FitResult(q_net, energy, T0, config, history, metrics)


def _fit_joint(q_net, energy, train_spins, T0, config, key, progress, hooks):
    """Train q and E together on likelihood + pseudo-likelihood + log-variance."""
    n_sites = train_spins.shape[-1] ** 2
    symmetry = (config.q_z2, config.q_colour_symmetric)

    def joint_loss(models, data, key):
        net, model = models
        key_batch, key_sample = jax.random.split(key)
        batch = _random_batch(key_batch, data, config.batch_size)
        nll = -jnp.mean(_log_q(net, batch, *symmetry)) / n_sites
        pl = pseudo_likelihood_loss(model, batch, T0)
        dist_q = AutoregressiveSpins(
            jax.lax.stop_gradient(net),
            z2=config.q_z2,
            colour_symmetric=config.q_colour_symmetric,
        )
        samples = dist_q.sample(key_sample, (config.batch_size,))
        reference = jnp.concatenate([batch, samples])
        lv = log_variance(
            _log_q(net, reference, *symmetry), model(reference), T0, n_sites
        )
        return nll + pl + config.lv_weight * lv, {"nll": nll, "pl": pl, "logvar": lv}

    (q_net, energy), history = train(
        (q_net, energy),
        joint_loss,
        train_spins,
        config.joint_steps,
        key=key,
        learning_rate=0.3 * min(config.q_learning_rate, config.energy_learning_rate),
        chunk_size=config.chunk_size,
        description="fit q and E jointly",
        progress=progress,
        **hooks,
    )
    return q_net, energy, history


def _held_out_metrics(q_net, energy, valid_spins, T0, config) -> dict:
    """Held-out NLL of q, pseudo-likelihood and log-variance per spin."""
    if valid_spins.shape[0] == 0:
        return {}
    n_sites = valid_spins.shape[-1] ** 2
    log_q = _batched_log_q(q_net, valid_spins, config)
    energies = eqx.filter_jit(lambda e, s: e(s))(energy, valid_spins)
    pl = eqx.filter_jit(pseudo_likelihood_loss)(energy, valid_spins, T0)
    return {
        "valid_nll_per_spin": float(-jnp.mean(log_q) / n_sites),
        "valid_pseudo_nll_per_spin": float(pl),
        "valid_log_variance_per_spin": float(
            log_variance(log_q, energies, T0, n_sites)
        ),
    }
