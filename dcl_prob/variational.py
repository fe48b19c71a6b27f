"""Variational retraining of the autoregressive q against an energy at a new T.

:func:`anneal` minimises the variational free energy per spin

    F_q = E_{s ~ q}[E(s) + T log q(s)] / N,

which is an upper bound on the true free energy per spin ``F = -T ln Z / N``
and exceeds it by ``T KL(q || p) / N`` with ``p = exp(-E / T) / Z``. The
gradient is the score-function (REINFORCE) estimator

    grad F_q = E_q[(f(s) - b) grad log q(s)],  f(s) = (E(s) + T log q(s)) / N,

over exact samples of q. The baseline ``b`` of sample ``i`` is the mean of
``f`` over the *other* samples of the batch (leave-one-out), which keeps the
estimator unbiased. It equals the plain batch-mean baseline scaled by
``B / (B - 1)``. The ``T grad log q`` term of the exact gradient is dropped
because its expectation under q is zero.

:func:`anneal_range` trains one temperature-conditioned network
(:class:`~dcl_prob.nn.rnn.AutoregressiveGRU` with ``conditioned=True``) over
an interval of temperatures. Every step draws ``K`` inverse temperatures,
stratified over the interval, and ``B / K`` samples of ``q(. | beta)`` at
each. The loss is the mean over the ``K`` groups of ``beta F_q(beta)`` per
spin, which is ``KL(q || p_beta) / N`` up to a constant of ``q``, so every
temperature of the interval weighs by its own KL. The baseline of a sample is
the leave-one-out mean of its own group.

The estimates after training are plain means over fresh samples of q
(biased by ``KL(q || p)``) and, beside them, self-normalized importance
sampling estimates over the same samples with weights
``w = exp(-E(s) / T) / q(s)``, which are consistent for any q that covers p.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.exact import boltzmann_probabilities
from dcl_prob.hamiltonians import magnetization
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.samplers.neural import log_z_statistics, weighted_mean
from dcl_prob.training import train

__all__ = [
    "ConditionedResult",
    "VariationalResult",
    "anneal",
    "anneal_range",
    "evaluate_free_energy",
    "exact_kl_divergence",
    "exact_log_q",
]


class VariationalResult(NamedTuple):
    """Retrained q and its variational estimates at ``temperature``.

    The estimates are per spin and come from ``n_eval`` fresh exact samples of
    q drawn after training. Each error is the standard error of the mean of
    independent samples.
    """

    q_net: AutoregressiveGRU
    temperature: float
    z2: bool  # whether q is symmetrised under the global spin flip
    free_energy: float  # F_q = E_q[E + T log q] / N, an upper bound on F
    free_energy_error: float
    energy: float  # E_q[E] / N
    energy_error: float
    entropy: float  # -E_q[log q] / N
    entropy_error: float
    abs_m: float  # E_q[|m|]
    abs_m_error: float
    reweighted: dict  # importance-sampling estimates, see evaluate_free_energy
    n_eval: int
    history: list  # per-chunk dicts: step, beta, loss (= F_q), energy, entropy

    def distribution(self) -> AutoregressiveSpins:
        """Return the retrained q as a NumPyro distribution."""
        return AutoregressiveSpins(self.q_net, z2=self.z2)


def _sample_terms(q_net, energy_fn, temperature, key, batch_size, z2):
    """Draw ``batch_size`` samples of q and return per-spin ``(f, E, log q)``."""
    f, energy, log_q, _ = _sample_terms_with_m(
        q_net, energy_fn, temperature, key, batch_size, z2
    )
    return f, energy, log_q


def _sample_terms_with_m(q_net, energy_fn, temperature, key, batch_size, z2):
    """As :func:`_sample_terms`, plus ``|m|`` of every sample."""
    distribution = AutoregressiveSpins(q_net, z2=z2)
    s = jax.lax.stop_gradient(distribution.sample(key, (batch_size,)))
    n_sites = q_net.L * q_net.L
    log_q = distribution.log_prob(s)
    energy = energy_fn(s).astype(jnp.float32)
    f = (energy + temperature * log_q) / n_sites
    return f, energy / n_sites, log_q / n_sites, jnp.abs(magnetization(s))


def _reinforce_loss(q_net, data, key, *, energy_static, batch_size, z2):
    """Score-function surrogate whose value is F_q and whose gradient estimates
    grad F_q with the leave-one-out baseline."""
    energy_arrays, temperature = data
    energy_fn = eqx.combine(energy_arrays, energy_static)
    f, energy, log_q = _sample_terms(q_net, energy_fn, temperature, key, batch_size, z2)
    f_const = jax.lax.stop_gradient(f)
    mean_f = jnp.mean(f_const)
    # f_i - mean over j != i of f_j  =  B / (B - 1) * (f_i - mean f).
    advantage = (f_const - mean_f) * (batch_size / (batch_size - 1))
    # log_q is per spin, so N * log_q is the total log q(s) whose score the
    # estimator E_q[(f - b) grad log q(s)] of grad F_q needs.
    surrogate = jnp.mean(advantage * log_q) * (q_net.L * q_net.L)
    loss = mean_f + surrogate - jax.lax.stop_gradient(surrogate)
    aux = {"energy": jnp.mean(energy), "entropy": -jnp.mean(log_q)}
    return loss, aux


@eqx.filter_jit
def _eval_chunk(q_net, energy_fn, temperature, key, batch_size, z2):
    return _sample_terms_with_m(q_net, energy_fn, temperature, key, batch_size, z2)


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    error = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else math.nan
    return float(values.mean()), float(error)


def evaluate_free_energy(
    q_net: AutoregressiveGRU,
    energy_fn: Callable,
    temperature: float,
    *,
    key: jax.Array,
    n_samples: int = 16384,
    batch_size: int = 4096,
    z2: bool = False,
) -> dict:
    """Estimate F_q, energy, entropy and ``|m|`` per spin from exact samples of q.

    Args:
        q_net: an :class:`AutoregressiveGRU`, or a conditioned one fixed with
            :meth:`~dcl_prob.nn.rnn.AutoregressiveGRU.at_temperature`.
        energy_fn: total energy ``(B, L, L) -> (B,)``.
        temperature: T of ``F_q = E_q[E + T log q] / N``.
        key: PRNG key.
        n_samples: fresh samples, rounded up to whole batches.
        batch_size: samples per compiled call.
        z2: evaluate the spin-flip symmetrised q.

    Returns:
        dict with ``free_energy``, ``energy``, ``entropy`` and ``abs_m``
        (means over q) and their ``*_error`` (standard errors of the mean),
        ``n_samples``, and ``reweighted``: a dict of importance-sampling
        estimates over the same samples with weights ``exp(-E / T) / q``:
        ``energy``, ``abs_m`` (self-normalized, delta-method errors),
        ``free_energy = -T ln Z / N`` from the mean weight, ``ess`` and
        ``ess_fraction`` (Kish).
    """
    _check_positive("n_samples", n_samples)
    _check_positive("batch_size", batch_size)
    batch_size = min(batch_size, n_samples)
    n_batches = -(-n_samples // batch_size)
    parts = [
        _eval_chunk(q_net, energy_fn, float(temperature), chunk_key, batch_size, z2)
        for chunk_key in jax.random.split(key, n_batches)
    ]
    f, energy, log_q, abs_m = (
        np.concatenate([np.asarray(p[i]) for p in parts]).astype(np.float64)
        for i in range(4)
    )
    summary = {"n_samples": int(f.size)}
    for name, values in (
        ("free_energy", f),
        ("energy", energy),
        ("entropy", -log_q),
        ("abs_m", abs_m),
    ):
        summary[name], summary[f"{name}_error"] = _mean_and_error(values)

    n_sites = q_net.L * q_net.L
    log_weights = -n_sites * f / float(temperature)
    log_z, log_z_error, ess = log_z_statistics(log_weights)
    weights = np.exp(log_weights - np.max(log_weights))
    weights /= weights.sum()
    reweighted = {
        "free_energy": -float(temperature) * log_z / n_sites,
        "free_energy_error": float(temperature) * log_z_error / n_sites,
        "ess": ess,
        "ess_fraction": ess / f.size,
    }
    for name, values in (("energy", energy), ("abs_m", abs_m)):
        reweighted[name], reweighted[f"{name}_error"] = weighted_mean(weights, values)
    summary["reweighted"] = reweighted
    return summary


def _check_positive(name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value} is invalid: pass a value > 0")


def _beta_stages(temperature: float, beta_schedule) -> list[float]:
    """Inverse temperatures of the training stages, ending at ``1 / temperature``."""
    target = 1.0 / temperature
    if beta_schedule is None:
        return [target]
    betas = [float(beta) for beta in beta_schedule]
    if any(not (math.isfinite(beta) and beta > 0) for beta in betas):
        raise ValueError(
            f"beta_schedule={betas} is invalid: inverse temperatures must be "
            "finite and > 0"
        )
    if not betas or not math.isclose(betas[-1], target, rel_tol=1e-6):
        betas.append(target)
    return betas


def anneal(
    q_net: AutoregressiveGRU,
    energy_fn: Callable,
    temperature: float,
    *,
    key: jax.Array,
    n_steps: int = 2000,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    z2: bool = False,
    beta_schedule: Sequence[float] | None = None,
    eval_size: int = 16384,
    chunk_size: int = 50,
    progress: bool = True,
) -> VariationalResult:
    """Retrain q to minimise the variational free energy F_q at ``temperature``.

    The optimisation starts from ``q_net`` (for example the q that ``fit``
    trained at T0) and uses the REINFORCE gradient with a leave-one-out
    baseline described in the module docstring.

    Args:
        q_net: initial autoregressive network; it is not modified.
        energy_fn: total energy ``E(s)`` of int8 spins ``(B, L, L)``, shape
            ``(B,)``, for example an ``ExtensiveEnergy`` or
            ``IsingModel().energy``. Its arrays are held fixed.
        temperature: target temperature T (energy units, k_B = 1).
        key: PRNG key.
        n_steps: total optimisation steps over all stages.
        batch_size: samples of q per step, at least 2.
        learning_rate: peak Adam learning rate of each stage.
        z2: train and evaluate the symmetrised ``q_z2(s) = (q(s) + q(-s)) / 2``.
        beta_schedule: optional increasing inverse temperatures to anneal
            through. Each stage gets an equal share of ``n_steps`` and its own
            cosine learning-rate schedule. ``1 / temperature`` is appended
            when the last entry differs from it.
        eval_size: fresh samples for the final estimates.
        chunk_size: steps per compiled chunk.
        progress: show progress bars.

    Returns:
        :class:`VariationalResult` with estimates at ``temperature``.

    Raises:
        ValueError: on a non-positive temperature, step count or sizes, a
            batch of fewer than 2 samples, or invalid inverse temperatures.
        FloatingPointError: if F_q becomes NaN or infinite during training.
    """
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature={temperature} is invalid: pass a finite value > 0"
        )
    _check_positive("n_steps", n_steps)
    _check_positive("eval_size", eval_size)
    if batch_size < 2:
        raise ValueError(
            f"batch_size={batch_size} is invalid: the leave-one-out baseline needs "
            "at least 2 samples per step"
        )
    betas = _beta_stages(temperature, beta_schedule)
    steps_per_stage = max(1, -(-n_steps // len(betas)))
    energy_arrays, energy_static = eqx.partition(energy_fn, eqx.is_array)

    def loss_fn(net, data, step_key):
        return _reinforce_loss(
            net,
            data,
            step_key,
            energy_static=energy_static,
            batch_size=batch_size,
            z2=z2,
        )

    history = []
    step_offset = 0
    stage_keys = jax.random.split(key, len(betas) + 1)
    for stage, beta in enumerate(betas):
        data = (energy_arrays, jnp.float32(1.0 / beta))
        q_net, stage_history = train(
            q_net,
            loss_fn,
            data,
            steps_per_stage,
            key=stage_keys[stage],
            learning_rate=learning_rate,
            chunk_size=chunk_size,
            description=f"anneal q (F_q/spin, T={1.0 / beta:.4g})",
            progress=progress,
        )
        for row in stage_history:
            history.append({**row, "step": row["step"] + step_offset, "beta": beta})
        step_offset = history[-1]["step"]

    summary = evaluate_free_energy(
        q_net,
        energy_fn,
        temperature,
        key=stage_keys[-1],
        n_samples=eval_size,
        batch_size=min(batch_size * 4, eval_size),
        z2=z2,
    )
    return VariationalResult(
        q_net=q_net,
        temperature=temperature,
        z2=bool(z2),
        free_energy=summary["free_energy"],
        free_energy_error=summary["free_energy_error"],
        energy=summary["energy"],
        energy_error=summary["energy_error"],
        entropy=summary["entropy"],
        entropy_error=summary["entropy_error"],
        abs_m=summary["abs_m"],
        abs_m_error=summary["abs_m_error"],
        reweighted=summary["reweighted"],
        n_eval=summary["n_samples"],
        history=history,
    )


class ConditionedResult(NamedTuple):
    """A temperature-conditioned q trained over an interval, and its estimates.

    ``estimates`` maps each evaluation temperature to the dict that
    :func:`evaluate_free_energy` returns at that temperature.
    """

    q_net: AutoregressiveGRU  # conditioned network; q_net.at_temperature(T)
    temperature_range: tuple[float, float]  # (T_low, T_high) of training
    z2: bool
    estimates: dict  # {T: evaluate_free_energy(...) dict}
    history: list  # per-chunk dicts: step, loss (mean beta F_q per spin)

    def distribution(self, temperature: float) -> AutoregressiveSpins:
        """Return q at ``temperature`` as a NumPyro distribution.

        Args:
            temperature: ``T`` in units of J/k_B; any value, not only those
                of the training range, though q is trained only inside it.

        Returns:
            An :class:`AutoregressiveSpins` over ``(L, L)`` spins.
        """
        return AutoregressiveSpins(self.q_net.at_temperature(temperature), z2=self.z2)


def _log_q_beta(net, s, beta, z2):
    log_q = net.log_prob(s, beta)
    if z2:
        log_q = jnp.logaddexp(log_q, net.log_prob(-s, beta)) - math.log(2.0)
    return log_q


def _conditioned_loss(
    q_net, data, key, *, energy_static, batch_size, n_groups, beta_range, z2
):
    """Score-function surrogate of the mean ``beta F_q(beta)`` per spin over
    ``n_groups`` stratified inverse temperatures."""
    energy_arrays = data
    energy_fn = eqx.combine(energy_arrays, energy_static)
    beta_low, beta_high = beta_range
    key_beta, key_sample, key_flip = jax.random.split(key, 3)
    group_size = batch_size // n_groups
    offsets = jax.random.uniform(key_beta, (n_groups,))
    betas = beta_low + (jnp.arange(n_groups) + offsets) / n_groups * (
        beta_high - beta_low
    )
    beta = jnp.repeat(betas, group_size)
    n = n_groups * group_size
    s = q_net.sample(n, key=key_sample, beta=beta)
    if z2:
        flip = jax.random.bernoulli(key_flip, 0.5, (n, 1, 1))
        s = jnp.where(flip, -s, s)
    s = jax.lax.stop_gradient(s)
    n_sites = q_net.L * q_net.L
    log_q = _log_q_beta(q_net, s, beta, z2) / n_sites
    energy = energy_fn(s).astype(jnp.float32) / n_sites
    f = jax.lax.stop_gradient(beta * energy + log_q).reshape(n_groups, group_size)
    group_mean = jnp.mean(f, axis=1, keepdims=True)
    advantage = (f - group_mean) * (group_size / (group_size - 1))
    surrogate = jnp.mean(advantage.reshape(-1) * log_q) * n_sites
    loss = jnp.mean(f) + surrogate - jax.lax.stop_gradient(surrogate)
    return loss, {"entropy": -jnp.mean(log_q)}


def anneal_range(
    q_net: AutoregressiveGRU,
    energy_fn: Callable,
    temperature_range: tuple[float, float],
    *,
    key: jax.Array,
    n_steps: int = 4000,
    batch_size: int = 512,
    n_groups: int = 8,
    learning_rate: float = 2e-3,
    z2: bool = False,
    eval_temperatures: Sequence[float] = (),
    eval_size: int = 16384,
    chunk_size: int = 50,
    progress: bool = True,
) -> ConditionedResult:
    """Train a temperature-conditioned q against ``energy_fn`` over an interval.

    Minimises the mean over inverse temperatures ``beta`` uniform in
    ``[1 / T_high, 1 / T_low]`` of ``beta F_q(beta)`` per spin, as described
    in the module docstring. Afterwards ``q_net.at_temperature(T)`` is a
    normalized q at any T of the interval, without retraining.

    Args:
        q_net: a network built with ``conditioned=True``; not modified.
        energy_fn: total energy of spins ``(B, L, L)``, shape ``(B,)``, held
            fixed (a learned ``ExtensiveEnergy`` or ``IsingModel().energy``).
        temperature_range: ``(T_low, T_high)`` with ``0 < T_low < T_high``.
        key: PRNG key.
        n_steps: optimisation steps.
        batch_size: samples per step, split evenly over ``n_groups``
            temperatures (rounded down to a multiple of ``n_groups``).
        n_groups: inverse temperatures per step, at least 1; each group
            needs at least 2 samples for its baseline.
        learning_rate: peak Adam learning rate (cosine schedule).
        z2: train and evaluate the spin-flip symmetrised q.
        eval_temperatures: temperatures at which to estimate F_q, energy,
            entropy and ``|m|`` after training.
        eval_size: fresh samples per evaluation temperature.
        chunk_size: steps per compiled chunk.
        progress: show a progress bar.

    Returns:
        :class:`ConditionedResult`.

    Raises:
        ValueError: for a network without temperature input, an invalid
            interval, or sizes that leave fewer than 2 samples per group.
    """
    if not getattr(q_net, "conditioned", False):
        raise ValueError(
            "anneal_range needs a temperature-conditioned network: build it with "
            "AutoregressiveGRU(L, H, conditioned=True, key=...)"
        )
    try:
        t_low, t_high = (float(t) for t in temperature_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"temperature_range={temperature_range!r} is invalid: pass (T_low, T_high)"
        ) from None
    if not (math.isfinite(t_high) and 0 < t_low < t_high):
        raise ValueError(
            f"temperature_range=({t_low}, {t_high}) is invalid: pass "
            "0 < T_low < T_high, both finite"
        )
    _check_positive("n_steps", n_steps)
    _check_positive("n_groups", n_groups)
    _check_positive("eval_size", eval_size)
    if batch_size // n_groups < 2:
        raise ValueError(
            f"batch_size={batch_size} with n_groups={n_groups} leaves fewer than 2 "
            "samples per temperature; raise batch_size or lower n_groups"
        )
    energy_arrays, energy_static = eqx.partition(energy_fn, eqx.is_array)

    def loss_fn(net, data, step_key):
        return _conditioned_loss(
            net,
            data,
            step_key,
            energy_static=energy_static,
            batch_size=batch_size,
            n_groups=n_groups,
            beta_range=(1.0 / t_high, 1.0 / t_low),
            z2=z2,
        )

    key_train, key_eval = jax.random.split(key)
    q_net, history = train(
        q_net,
        loss_fn,
        energy_arrays,
        n_steps,
        key=key_train,
        learning_rate=learning_rate,
        chunk_size=chunk_size,
        description=f"anneal q over T in [{t_low:g}, {t_high:g}] (beta F_q/spin)",
        progress=progress,
    )
    estimates = {}
    for T, eval_key in zip(
        eval_temperatures, jax.random.split(key_eval, max(len(eval_temperatures), 1))
    ):
        estimates[float(T)] = evaluate_free_energy(
            q_net.at_temperature(T),
            energy_fn,
            T,
            key=eval_key,
            n_samples=eval_size,
            batch_size=min(4 * batch_size, eval_size),
            z2=z2,
        )
    return ConditionedResult(
        q_net=q_net,
        temperature_range=(t_low, t_high),
        z2=bool(z2),
        estimates=estimates,
        history=history,
    )


def exact_kl_divergence(
    q_net: AutoregressiveGRU,
    temperature: float,
    *,
    z2: bool = False,
    J: float = 1.0,
    batch_size: int = 8192,
) -> float:
    """Compute ``KL(q || p)`` to the Ising Boltzmann distribution by enumeration.

    ``p`` is the zero-field Ising model with coupling ``J`` on the
    ``L x L`` torus of ``q_net``. Enumeration limits ``L`` to 4 or less
    (65536 states). The sum is in float64 over float32 ``log q``.

    Args:
        q_net: the network of q, spins -1/+1.
        temperature: ``T`` of ``p`` in units of J/k_B.
        z2: symmetrise q under the global spin flip, as the fit did.
        J: coupling of ``p`` (energy units).
        batch_size: configurations per evaluation of ``log q``.

    Returns:
        ``KL(q || p)`` in nats, for the whole lattice (not per spin).

    Raises:
        ValueError: as :func:`dcl_prob.exact.boltzmann_probabilities`.
    """
    configs, p = boltzmann_probabilities(q_net.L, temperature, J)
    log_q = exact_log_q(q_net, configs, z2=z2, batch_size=batch_size)
    q = np.exp(log_q)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    return float(np.sum(q * (log_q - log_p)))


@eqx.filter_jit
def _log_prob(q_net, s, z2):
    return AutoregressiveSpins(q_net, z2=z2).log_prob(s)


def exact_log_q(
    q_net: AutoregressiveGRU,
    spins: np.ndarray,
    *,
    z2: bool = False,
    batch_size: int = 8192,
) -> np.ndarray:
    """Return ``log q`` of spins ``(n, L, L)`` as float64, evaluated in batches."""
    parts = [
        np.asarray(_log_prob(q_net, jnp.asarray(spins[i : i + batch_size]), z2))
        for i in range(0, len(spins), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64)
