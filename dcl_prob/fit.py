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

The spins are an array in memory, or a
:class:`dcl_prob.streaming.StreamedSpins` HDF5 data set whose batches are read
from the file chunk by chunk. Streamed data give other batches, and so other
parameters, than the same data in memory with the same key. Streaming picks
held-out rows by a keyed hash (:class:`dcl_prob.streaming.RowSplit`) and computes
log q of the data part of each log-variance batch on the fly, where an
in-memory fit uses a pool of precomputed values.

Every phase runs on all devices of :func:`dcl_prob.sharding.current_mesh`:
parameters are replicated and each step's batch is split over the devices.

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

from dcl_prob import sharding
from dcl_prob.fit_config import FitConfig, check_options, check_spins
from dcl_prob.nn.ednn import ExtensiveEnergy, fix_energy_offset
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.objectives import (
    log_variance,
    negative_log_likelihood,
    pseudo_likelihood_loss,
)
from dcl_prob.streaming import ChunkBatches, RowSplit, StreamedSpins, key_seed
from dcl_prob.training import train

__all__ = ["FitConfig", "FitResult", "fit", "make_networks", "train_q"]

logger = logging.getLogger(__name__)


class FitResult(NamedTuple):
    """Fitted networks and training record.

    ``temperature`` is the training temperature ``T0`` in units of J/k_B
    (``k_B = 1``), and the learned energy is in the same units, so that
    ``exp(-E(s) / T0)`` models the data.
    """

    q_net: AutoregressiveGRU  # the autoregressive model
    energy: ExtensiveEnergy  # the energy, constant fixed to zero mean on random spins
    temperature: float  # training temperature T0
    config: FitConfig
    history: dict  # per-phase lists of per-chunk diagnostics
    metrics: dict  # final held-out diagnostics

    def distribution(self) -> AutoregressiveSpins:
        """Return the fitted q as a NumPyro distribution.

        Returns:
            An :class:`~dcl_prob.nn.rnn.AutoregressiveSpins` over int8
            configurations ``(L, L)``, symmetrised as set by
            ``config.q_z2`` and ``config.q_colour_symmetric``.
        """
        return AutoregressiveSpins(
            self.q_net,
            z2=self.config.q_z2,
            colour_symmetric=self.config.q_colour_symmetric,
        )


def make_networks(L: int, config: FitConfig, *, key: jax.Array):
    """Build the initial ``(AutoregressiveGRU, ExtensiveEnergy)`` for size ``L``.

    ``config.n_states`` must be a number (not None). :func:`fit` stores the
    inferred one in the config of its result. With ``energy_kind="bonds"``
    the energy starts with zero couplings ``(2, L, L)`` for this ``L``.

    Args:
        L: linear lattice size, a multiple of ``config.focus``.
        config: hyperparameters of both networks, with ``n_states`` set: 2
            for Ising spins -1/+1, ``q > 2`` for states ``0 .. q-1``.
        key: JAX PRNG key of the initial weights (keyword only).

    Returns:
        ``(q_net, energy)``: the autoregressive model of ``L x L``
        configurations and the extensive energy network, both newly
        initialised.

    Raises:
        ValueError: if ``config.n_states`` is None, an option of ``config``
            does not fit the number of states, or ``L`` is not a multiple of
            ``config.focus``.
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
    batches: Callable | None = None,
) -> tuple[AutoregressiveGRU, list]:
    """Train q by maximum likelihood on spins ``(n, L, L)``.

    Without ``batches`` every step draws ``config.batch_size`` configurations
    of ``spins`` uniformly with replacement. The loss is ``-log q(s) / N``
    in nats per spin, averaged over the batch, with ``q`` symmetrised when
    ``config.q_z2`` or ``config.q_colour_symmetric`` is set.

    Args:
        q_net: the autoregressive model to train.
        spins: int8 training configurations ``(n, L, L)``: -1/+1 spins, or
            states ``0 .. q-1``. With ``batches`` only the lattice size is
            read from ``spins.shape``, so a
            :class:`~dcl_prob.streaming.StreamedSpins` also works.
        config: hyperparameters. This function reads ``q_steps``,
            ``q_learning_rate``, ``batch_size``, ``chunk_size``, ``q_z2`` and
            ``q_colour_symmetric``.
        key: JAX PRNG key (keyword only).
        progress: show a progress bar (never under ``CI``).
        on_chunk: passed to :func:`dcl_prob.training.train`.
        restore: passed to :func:`dcl_prob.training.train`.
        batches: passed to :func:`dcl_prob.training.train`. Each call
            returns the int8 batches ``(chunk_size, batch_size, L, L)`` of one
            chunk.

    Returns:
        ``(q_net, history)``: the trained model and one dict per chunk with
        ``"step"`` and ``"loss"``, the chunk's mean negative log-likelihood
        per spin in nats.

    Raises:
        ValueError: if ``restore`` returns a step that is not a multiple of
            ``config.chunk_size``.
        FloatingPointError: if the loss becomes NaN or infinite.
    """
    n_sites = spins.shape[-1] * spins.shape[-2]
    mesh = sharding.current_mesh()

    def q_loss(net, data, key, batch=None):
        if batch is None:
            batch = _random_batch(key, data, config.batch_size)
        batch = sharding.constrain_rows(batch, mesh)
        if config.q_z2 or config.q_colour_symmetric:
            log_q = _log_q(net, batch, config.q_z2, config.q_colour_symmetric)
            return -jnp.mean(log_q) / n_sites, {}
        return negative_log_likelihood(net, batch), {}

    return train(
        q_net,
        q_loss,
        None if batches is not None else spins,
        config.q_steps,
        key=key,
        learning_rate=config.q_learning_rate,
        chunk_size=config.chunk_size,
        description="fit q (NLL/spin)",
        progress=progress,
        on_chunk=on_chunk,
        restore=restore,
        batches=batches,
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
            states ``0 .. q-1`` with ``config.n_states = q``; an array, or a
            :class:`dcl_prob.streaming.StreamedSpins` to read the batches
            from an HDF5 file.
        temperature: the temperature ``T0`` the data were sampled at, in
            units of J/k_B (``k_B = 1``).
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
            states of ``config.n_states``, an invalid temperature, options
            that do not fit the number of states, or streamed data with a
            ``batch_size`` that is not a multiple of the device count.
        FloatingPointError: if a loss becomes NaN or infinite.
    """
    config = config or FitConfig()
    streamed = isinstance(spins, StreamedSpins)
    if not streamed:
        spins = jnp.asarray(spins)
    shape = tuple(spins.shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"spins of shape {shape} are invalid: fit needs (n, L, L)")
    values = spins.values if streamed else np.asarray(spins)
    n_states = check_spins(values, config.n_states)
    check_options(config, n_states)
    config = dataclasses.replace(config, n_states=n_states)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature={temperature!r} is invalid: it must be finite and > 0"
        )
    mesh = sharding.current_mesh()
    if streamed:
        sharding.check_divisible("batch_size", config.batch_size, mesh)
    L = shape[-1]
    n_sites = L * L
    T0 = float(temperature)
    key_init, key_split, key_q, key_pool, key_e, key_joint = jax.random.split(key, 6)
    q_net, energy = make_networks(L, config, key=key_init)
    if streamed:
        words = key_seed(key_split)
        seed = sum(word << (32 * i) for i, word in enumerate(words[:2]))
        split = RowSplit(len(spins), config.validation_fraction, seed)
        train_spins = valid_spins = None
        if logger.isEnabledFor(logging.INFO):  # counting hashes every row
            logger.info(
                "streaming %d configurations from %s, %d held out",
                len(spins),
                spins.path,
                split.count_validation(),
            )
    else:
        train_spins, valid_spins = _split_validation(
            spins, config.validation_fraction, key_split
        )
    history = {}

    def hooks(phase, phase_key):
        options = {}
        if streamed:
            options["batches"] = ChunkBatches(
                spins,
                split,
                key=jax.random.fold_in(phase_key, _STREAM_KEY),
                chunk_size=config.chunk_size,
                batch_size=config.batch_size,
                mesh=mesh,
            )
        if checkpoints is None:
            return options

        def save(step, model, opt_state, metrics, last):
            checkpoints.save(phase, step, model, opt_state, last=last)

        def restore(model, opt_state):
            return checkpoints.restore(phase, model, opt_state)

        return options | {"on_chunk": save, "restore": restore}

    # Phase 1: q by maximum likelihood.
    q_net, history["q"] = train_q(
        q_net,
        spins if streamed else train_spins,
        config,
        key=key_q,
        progress=progress,
        **hooks("q", key_q),
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
        "q": (q_pool, _batched_log_q(q_net, q_pool, config)),
        "uniform": (uniform_pool, _batched_log_q(q_net, uniform_pool, config)),
    }
    q_arrays, q_static = eqx.partition(q_net, eqx.is_array)
    if streamed:
        pools["q_net"] = q_arrays  # log q of streamed data is computed per step
    else:
        pools["data"] = (train_spins, _batched_log_q(q_net, train_spins, config))
    sizes = [
        max(1, int(round(f * config.batch_size))) for f in config.reference_fractions
    ]
    symmetry = (config.q_z2, config.q_colour_symmetric)

    def reference_batch(pools, key, batch):
        keys = jax.random.split(key, 3)
        configs, log_qs = [], []
        for k, name, size in zip(keys, ("data", "q", "uniform"), sizes):
            if name == "data" and "data" not in pools:
                part = batch[:size]
                frozen_q = eqx.combine(pools["q_net"], q_static)
                configs.append(part)
                log_qs.append(_log_q(frozen_q, part, *symmetry))
                continue
            index = jax.random.randint(k, (size,), 0, pools[name][0].shape[0])
            configs.append(pools[name][0][index])
            log_qs.append(pools[name][1][index])
        reference = sharding.constrain_rows(jnp.concatenate(configs), mesh)
        return reference, sharding.constrain_rows(jnp.concatenate(log_qs), mesh)

    # Phase 2: E by pseudo-likelihood plus log-variance against q.
    def energy_loss(model, pools, key, batch=None):
        key_pl, key_ref = jax.random.split(key)
        if batch is None:
            batch = _random_batch(key_pl, pools["data"][0], config.batch_size)
        batch = sharding.constrain_rows(batch, mesh)
        pl = pseudo_likelihood_loss(model, batch, T0)
        reference, log_q = reference_batch(pools, key_ref, batch)
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
        **hooks("energy", key_e),
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
            hooks("joint", key_joint),
            n_sites,
        )

    energy = fix_energy_offset(energy)
    if streamed:
        batches = split.validation_batches(spins, _METRIC_BATCH)
        metrics = _held_out_metrics(q_net, energy, batches, T0, config)
    else:
        metrics = _held_out_metrics(q_net, energy, [valid_spins], T0, config)
    logger.info("fit finished: %s", metrics)
    return FitResult(q_net, energy, T0, config, history, metrics)


# Folded into a phase key to give the key of its stream of batches.
_STREAM_KEY = 0x5EED
# Validation configurations per evaluation of the held-out metrics.
_METRIC_BATCH = 256


def _fit_joint(q_net, energy, train_spins, T0, config, key, progress, hooks, n_sites):
    """Train q and E together on likelihood + pseudo-likelihood + log-variance."""
    symmetry = (config.q_z2, config.q_colour_symmetric)
    mesh = sharding.current_mesh()

    def joint_loss(models, data, key, batch=None):
        net, model = models
        key_batch, key_sample = jax.random.split(key)
        if batch is None:
            batch = _random_batch(key_batch, data, config.batch_size)
        batch = sharding.constrain_rows(batch, mesh)
        nll = -jnp.mean(_log_q(net, batch, *symmetry)) / n_sites
        pl = pseudo_likelihood_loss(model, batch, T0)
        dist_q = AutoregressiveSpins(
            jax.lax.stop_gradient(net),
            z2=config.q_z2,
            colour_symmetric=config.q_colour_symmetric,
        )
        samples = dist_q.sample(key_sample, (config.batch_size,))
        reference = jnp.concatenate([batch, sharding.constrain_rows(samples, mesh)])
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


def _held_out_metrics(q_net, energy, batches, T0, config) -> dict:
    """Held-out NLL of q, pseudo-likelihood and log-variance per spin.

    ``batches`` yields arrays of validation configurations; the sums are
    accumulated over them, so streamed data need one batch in memory.
    """
    energy_of = eqx.filter_jit(lambda e, s: e(s))
    pseudo_nll = eqx.filter_jit(pseudo_likelihood_loss)
    count, n_sites = 0, None
    total_log_q = total_pl = 0.0
    residual_sums = np.zeros(2)  # sums of r - shift and (r - shift)^2, float64
    shift = None
    for spins in batches:
        if spins.shape[0] == 0:
            continue
        spins = jnp.asarray(spins)
        n_sites = spins.shape[-1] * spins.shape[-2]
        log_q = np.asarray(_batched_log_q(q_net, spins, config), np.float64)
        energies = np.asarray(energy_of(energy, spins), np.float64)
        residual = log_q + energies / T0
        if shift is None:  # shifting by a typical value avoids cancellation
            shift = float(np.mean(residual))
        residual_sums += [np.sum(residual - shift), np.sum((residual - shift) ** 2)]
        total_log_q += float(np.sum(log_q))
        total_pl += float(pseudo_nll(energy, spins, T0)) * spins.shape[0]
        count += spins.shape[0]
    if count == 0:
        return {}
    mean_shifted = residual_sums[0] / count
    variance = residual_sums[1] / count - mean_shifted**2
    return {
        "valid_nll_per_spin": float(-total_log_q / count / n_sites),
        "valid_pseudo_nll_per_spin": float(total_pl / count),
        "valid_log_variance_per_spin": float(variance / n_sites),
    }
