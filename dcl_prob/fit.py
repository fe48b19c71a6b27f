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
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

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


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit`.

    Attributes:
        hidden_size: GRU hidden units of q.
        q_position: position encoding of q, ``"boundary"`` (parameters
            independent of L, so q moves to other lattice sizes) or ``"site"``
            (a learned vector per site).
        q_steps: optimisation steps of the maximum-likelihood phase.
        q_learning_rate: peak Adam learning rate of q.
        batch_size: configurations per step.
        q_z2: symmetrise q under the global spin flip (doubles its cost).
        focus: focus block side ``f`` of the energy network.
        context: context border ``c`` of the energy network.
        energy_hidden: hidden widths of the tile perceptron.
        z2: make E symmetric under the global spin flip (no field term).
        energy_steps: optimisation steps of the energy phase.
        energy_learning_rate: peak Adam learning rate of E.
        lv_weight: weight of the log-variance term against the pseudo-likelihood.
            NOTE: with the default 0.1 the demo's energy came out 0.3-0.9 % too
            strong on single flips, most at low T; 0 gave 0.2-0.4 % in one
            comparison on the same data. The best weight is not settled.
        reference_fractions: shares of data, q samples and uniformly random
            configurations in each log-variance batch.
        n_q_samples: size of the pool of q samples used as reference set.
        joint: add a phase that trains q and E together.
        joint_steps: steps of that phase.
        validation_fraction: share of the data held out to monitor q.
        chunk_size: steps per compiled chunk.
    """

    hidden_size: int = 64
    q_position: str = "boundary"
    q_steps: int = 1500
    q_learning_rate: float = 3e-3
    batch_size: int = 256
    q_z2: bool = False
    focus: int = 2
    context: int = 1
    energy_hidden: tuple[int, ...] = (32, 64)
    z2: bool = True
    energy_steps: int = 1500
    energy_learning_rate: float = 3e-3
    lv_weight: float = 0.1
    reference_fractions: tuple[float, float, float] = (0.5, 0.4, 0.1)
    n_q_samples: int = 8192
    joint: bool = False
    joint_steps: int = 500
    validation_fraction: float = 0.05
    chunk_size: int = 50

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FitConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown fit options {unknown}; valid options are {sorted(names)}"
            )
        converted = dict(values)
        for name in ("energy_hidden", "reference_fractions"):
            if name in converted:
                converted[name] = tuple(converted[name])
        return cls(**converted)


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
        return AutoregressiveSpins(self.q_net, z2=self.config.q_z2)


def make_networks(L: int, config: FitConfig, *, key: jax.Array):
    """Initial ``(AutoregressiveGRU, ExtensiveEnergy)`` for lattice size ``L``."""
    key_q, key_e = jax.random.split(key)
    q_net = AutoregressiveGRU(
        L, config.hidden_size, key=key_q, position_encoding=config.q_position
    )
    energy = ExtensiveEnergy(
        config.focus, config.context, config.energy_hidden, config.z2, key=key_e
    )
    energy.geometry(L)  # raises early if L is not a multiple of the focus
    return q_net, energy


def _log_q(q_net: AutoregressiveGRU, s: jax.Array, z2: bool) -> jax.Array:
    log_q = q_net.log_prob(s)
    if z2:
        log_q = jnp.logaddexp(log_q, q_net.log_prob(-s)) - math.log(2.0)
    return log_q


def _batched_log_q(q_net, s, z2, batch=1024) -> jax.Array:
    fn = eqx.filter_jit(_log_q)
    parts = [fn(q_net, s[i : i + batch], z2) for i in range(0, len(s), batch)]
    return jnp.concatenate(parts)


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
        if config.q_z2:
            return -jnp.mean(_log_q(net, batch, True)) / n_sites, {}
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
        spins: int8 Ising spins +-1, shape ``(n, L, L)``.
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
        A :class:`FitResult`.
    """
    config = config or FitConfig()
    spins = jnp.asarray(spins)
    if spins.ndim != 3 or spins.shape[1] != spins.shape[2]:
        raise ValueError(
            f"spins of shape {tuple(spins.shape)} are invalid: fit needs (n, L, L)"
        )
    values = np.unique(np.asarray(spins))
    if not np.isin(values, (-1, 1)).all():
        hint = ""
        if np.isin(values, (0, 1)).all():
            hint = "; for 0/1 data pass 2 * spins - 1 (or --encoding 01)"
        raise ValueError(
            f"spins contain the values {values[:10].tolist()}, which are not Ising "
            f"spins -1/+1{hint}"
        )
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
    q_dist = AutoregressiveSpins(q_net, z2=config.q_z2)
    q_pool = eqx.filter_jit(lambda d, k: d.sample(k, (config.n_q_samples,)))(
        q_dist, key_sample
    )
    uniform_pool = jnp.where(
        jax.random.bernoulli(key_uniform, 0.5, (config.n_q_samples, L, L)), 1, -1
    ).astype(jnp.int8)
    pools = {
        "data": (train_spins, _batched_log_q(q_net, train_spins, config.q_z2)),
        "q": (q_pool, _batched_log_q(q_net, q_pool, config.q_z2)),
        "uniform": (uniform_pool, _batched_log_q(q_net, uniform_pool, config.q_z2)),
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

    def joint_loss(models, data, key):
        net, model = models
        key_batch, key_sample = jax.random.split(key)
        batch = _random_batch(key_batch, data, config.batch_size)
        nll = -jnp.mean(_log_q(net, batch, config.q_z2)) / n_sites
        pl = pseudo_likelihood_loss(model, batch, T0)
        dist_q = AutoregressiveSpins(jax.lax.stop_gradient(net), z2=config.q_z2)
        samples = dist_q.sample(key_sample, (config.batch_size,))
        reference = jnp.concatenate([batch, samples])
        lv = log_variance(
            _log_q(net, reference, config.q_z2), model(reference), T0, n_sites
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
    log_q = _batched_log_q(q_net, valid_spins, config.q_z2)
    energies = eqx.filter_jit(lambda e, s: e(s))(energy, valid_spins)
    pl = eqx.filter_jit(pseudo_likelihood_loss)(energy, valid_spins, T0)
    return {
        "valid_nll_per_spin": float(-jnp.mean(log_q) / n_sites),
        "valid_pseudo_nll_per_spin": float(pl),
        "valid_log_variance_per_spin": float(
            log_variance(log_q, energies, T0, n_sites)
        ),
    }
