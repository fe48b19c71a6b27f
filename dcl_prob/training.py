"""A generic Optax training loop that runs chunks of steps inside ``lax.scan``.

Python regains control only between chunks, to update the progress bar, log,
write checkpoints and read the next chunk of streamed batches. Parameters,
optimizer state and data are replicated on every device of
:func:`dcl_prob.sharding.current_mesh`. A loss that splits its batch over
the devices (:func:`dcl_prob.sharding.constrain_rows`) makes the loop data
parallel, and XLA averages the gradients across devices.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from dcl_prob import sharding

__all__ = ["make_optimizer", "progress_enabled", "train"]

logger = logging.getLogger(__name__)


def progress_enabled(progress: bool) -> bool:
    """Return whether to show progress bars: requested, and not under CI.

    Args:
        progress: whether the caller requests progress bars.

    Returns:
        True if ``progress`` is true and the environment variable ``CI`` is
        unset or empty.
    """
    return bool(progress) and not os.environ.get("CI")


def make_optimizer(learning_rate: float, n_steps: int) -> optax.GradientTransformation:
    """Build Adam with gradient clipping and a cosine decay of the learning rate.

    Gradients are first clipped to a global L2 norm of at most 1. Adam then
    uses a learning rate that decays from ``learning_rate`` along a cosine
    to 5% of it at step ``n_steps``, and stays there.

    Args:
        learning_rate: initial and peak learning rate of Adam.
        n_steps: steps of the decay. Values below 1 count as 1.

    Returns:
        An :class:`optax.GradientTransformation`.
    """
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
    batches: Callable | None = None,
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
            (0 to start afresh). Every chunk's key depends only on ``key``
            and the chunk index, so a resumed run repeats the uninterrupted
            one.
        batches: streamed data, called as ``batches(chunk)`` with the chunk
            index; it returns a pytree of arrays with a leading axis of
            ``chunk_size``, placed on the devices, and step ``t`` of the chunk
            calls ``loss_fn(model, data, key, batch)`` with slice ``t``. It
            must depend only on the chunk index, so that resuming works. The
            next chunk is requested while the devices run the current one.

    Returns:
        ``(model, history)`` where ``history`` is a list of per-chunk dicts of
        mean diagnostics with the step number.

    Raises:
        ValueError: if ``restore`` returns a step that is not a multiple of
            ``chunk_size``.
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
    mesh = sharding.current_mesh()
    params, opt_state, data = sharding.replicate((params, opt_state, data), mesh)

    @functools.partial(jax.jit, out_shardings=sharding.replicated(mesh))
    def run_chunk(params, opt_state, key, data, chunk_batches):
        def step(carry, inputs):
            params, opt_state = carry
            step_key, batch = inputs

            def loss_of(p):
                if batches is None:
                    return loss_fn(eqx.combine(p, static), data, step_key)
                return loss_fn(eqx.combine(p, static), data, step_key, batch)

            (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), {"loss": loss, **aux}

        keys = jax.random.split(key, chunk_size)
        (params, opt_state), metrics = jax.lax.scan(
            step, (params, opt_state), (keys, chunk_batches)
        )
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
    upcoming = None
    if batches is not None and start_chunk < n_chunks:
        upcoming = batches(start_chunk)
    try:
        for chunk in range(start_chunk, n_chunks):
            chunk_batches = upcoming
            params, opt_state, metrics = run_chunk(
                params, opt_state, chunk_keys[chunk], data, chunk_batches
            )
            # The call above returns before the devices finish, so the host
            # reads the next chunk while they compute.
            if batches is not None and chunk + 1 < n_chunks:
                upcoming = batches(chunk + 1)
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
