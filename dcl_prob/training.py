"""A generic Optax training loop that runs chunks of steps inside ``lax.scan``.

Python regains control only between chunks, to update the progress bar, log
and write checkpoints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

__all__ = ["make_optimizer", "progress_enabled", "train"]

logger = logging.getLogger(__name__)


def progress_enabled(progress: bool) -> bool:
    """Return whether to show progress bars: requested, and not under CI."""
    return bool(progress) and not os.environ.get("CI")


def make_optimizer(learning_rate: float, n_steps: int) -> optax.GradientTransformation:
    """Adam with gradient clipping and a cosine decay to 5% of ``learning_rate``."""
    schedule = optax.cosine_decay_schedule(learning_rate, max(n_steps, 1), alpha=0.05)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def _trainable(model):
    return eqx.partition(model, eqx.is_inexact_array)


def train(
    model,
    loss_fn: Callable,
    data,
    n_steps: int,
    *,
    key: jax.Array,
    learning_rate: float,
    chunk_size: int = 50,
    description: str = "train",
    progress: bool = True,
    on_chunk: Callable | None = None,
    restore: Callable | None = None,
):
    """Minimise ``loss_fn(model, data, key) -> (loss, aux)`` with Adam.

    Args:
        model: an Equinox module; its inexact arrays are trained.
        loss_fn: returns a scalar loss and a dict of scalar diagnostics.
        data: a pytree of arrays passed unchanged to every step.
        n_steps: number of optimisation steps (rounded up to whole chunks).
        key: PRNG key; each step gets its own subkey.
        learning_rate: peak learning rate of the cosine schedule.
        chunk_size: steps per compiled ``lax.scan`` chunk.
        description: label of the progress bar.
        progress: show a progress bar (never under ``CI``).
        on_chunk: called as ``on_chunk(step, model, opt_state, metrics,
            last=...)`` after every chunk, for checkpoints; ``last`` is True
            after the final chunk.
        restore: called once as ``restore(model, opt_state)`` with the fresh
            model and optimizer state. It returns ``(step, model, opt_state)``
            to continue from, where ``step`` is a multiple of ``chunk_size``
            (0 to start afresh). Every chunk's key depends only on ``key`` and the chunk
            index, so a resumed run repeats the uninterrupted one.

    Returns:
        ``(model, history)`` where ``history`` is a list of per-chunk dicts of
        mean diagnostics with the step number.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite.
    """
    n_chunks = max(1, -(-n_steps // chunk_size))
    optimizer = make_optimizer(learning_rate, n_chunks * chunk_size)
    params, static = _trainable(model)
    opt_state = optimizer.init(params)
    start_chunk = 0
    if restore is not None:
        start_step, model, opt_state = restore(model, opt_state)
        if start_step % chunk_size:
            raise ValueError(
                f"cannot resume at step {start_step}: it is not a multiple of the "
                f"chunk size {chunk_size}"
            )
        start_chunk = start_step // chunk_size
        params, _ = _trainable(model)

    @jax.jit
    def run_chunk(params, opt_state, key, data):
        def step(carry, step_key):
            params, opt_state = carry

            def loss_of(p):
                return loss_fn(eqx.combine(p, static), data, step_key)

            (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), {"loss": loss, **aux}

        keys = jax.random.split(key, chunk_size)
        (params, opt_state), metrics = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    history = []
    bar = tqdm(
        total=n_chunks * chunk_size,
        initial=start_chunk * chunk_size,
        desc=description,
        disable=not progress_enabled(progress),
        leave=False,
    )
    chunk_keys = jax.random.split(key, n_chunks)
    try:
        for chunk in range(start_chunk, n_chunks):
            params, opt_state, metrics = run_chunk(
                params, opt_state, chunk_keys[chunk], data
            )
            metrics = {name: float(value) for name, value in metrics.items()}
            step = (chunk + 1) * chunk_size
            if not np.isfinite(metrics["loss"]):
                raise FloatingPointError(
                    f"{description}: the loss became {metrics['loss']} at step "
                    f"{step}; lower the learning rate or check the data"
                )
            history.append({"step": step, **metrics})
            bar.update(chunk_size)
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
            logger.debug("%s step %d: %s", description, step, metrics)
            if on_chunk is not None:
                on_chunk(
                    step,
                    eqx.combine(params, static),
                    opt_state,
                    metrics,
                    last=chunk == n_chunks - 1,
                )
    finally:
        bar.close()
    return eqx.combine(params, static), history
