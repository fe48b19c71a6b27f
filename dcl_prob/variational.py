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
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.training import train

__all__ = [
    "VariationalResult",
    "anneal",
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
    n_eval: int
    history: list  # per-chunk dicts: step, beta, loss (= F_q), energy, entropy

    def distribution(self) -> AutoregressiveSpins:
        """Return the retrained q as a NumPyro distribution."""
        return AutoregressiveSpins(self.q_net, z2=self.z2)


def _sample_terms(q_net, energy_fn, temperature, key, batch_size, z2):
    """Draw ``batch_size`` samples of q and return per-spin ``(f, E, log q)``."""
    distribution = AutoregressiveSpins(q_net, z2=z2)
    s = jax.lax.stop_gradient(distribution.sample(key, (batch_size,)))
    n_sites = q_net.L * q_net.L
    log_q = distribution.log_prob(s)
    energy = energy_fn(s).astype(jnp.float32)
    f = (energy + temperature * log_q) / n_sites
    return f, energy / n_sites, log_q / n_sites


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
    return _sample_terms(q_net, energy_fn, temperature, key, batch_size, z2)


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
    """Estimate F_q, energy and entropy per spin from fresh exact samples of q.

    Returns:
        dict with ``free_energy``, ``energy``, ``entropy`` and their
        ``*_error`` (standard errors of the mean), and ``n_samples`` (rounded
        up to whole batches).
    """
    _check_positive("n_samples", n_samples)
    _check_positive("batch_size", batch_size)
    batch_size = min(batch_size, n_samples)
    n_batches = -(-n_samples // batch_size)
    parts = [
        _eval_chunk(q_net, energy_fn, float(temperature), chunk_key, batch_size, z2)
        for chunk_key in jax.random.split(key, n_batches)
    ]
    f, energy, log_q = (
        np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(3)
    )
    summary = {"n_samples": int(f.size)}
    for name, values in (("free_energy", f), ("energy", energy), ("entropy", -log_q)):
        summary[name], summary[f"{name}_error"] = _mean_and_error(values)
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
        n_eval=summary["n_samples"],
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
