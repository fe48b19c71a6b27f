"""The samplers that :func:`dcl_prob.montecarlo.simulate` runs, by name.

Each entry of :data:`SAMPLERS` contains the functions that start one chain,
build its kernel, read the configuration and energy at the target
temperature and pick the info statistic to average, and the models that the
sampler accepts:

- ``"checkerboard"``: checkerboard Metropolis for the Ising model. For the
  other models, which have no Metropolis kernel here, the name selects
  ``"heat-bath"``.
- ``"heat-bath"``: the checkerboard heat bath, for every model.
- ``"wolff"``: Wolff cluster flips, Ising model at ``h = 0``.
- ``"swendsen-wang"``: Swendsen-Wang updates, ferromagnetic Potts model.
- ``"parallel-tempering"``: replica exchange over a temperature ladder with
  the heat bath as local kernel, for every model. Samples are kept at the
  target temperature of the ladder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from dcl_prob.hamiltonians import (
    ClockModel,
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
)
from dcl_prob.samplers import checkerboard
from dcl_prob.samplers.replica_exchange import build_kernel as build_exchange_kernel
from dcl_prob.samplers.replica_exchange import init as init_exchange
from dcl_prob.samplers.swendsen_wang import build_kernel as build_swendsen_wang_kernel
from dcl_prob.samplers.swendsen_wang import init as init_swendsen_wang
from dcl_prob.samplers.wolff import build_kernel as build_wolff_kernel
from dcl_prob.samplers.wolff import init as init_wolff

__all__ = [
    "DEFAULT_LADDER_RATIO",
    "DEFAULT_N_REPLICAS",
    "DEFAULT_SAMPLERS",
    "SAMPLERS",
    "SamplerSpec",
    "resolve_sampler",
    "temperature_ladder",
]

ALL_MODELS = (IsingModel, IsingNNNModel, PottsModel, ClockModel, EdwardsAndersonModel)
# The default ladder of parallel tempering: DEFAULT_N_REPLICAS temperatures
# spaced geometrically from the target T to DEFAULT_LADDER_RATIO * T.
DEFAULT_N_REPLICAS = 16
DEFAULT_LADDER_RATIO = 4.0


class SamplerSpec(NamedTuple):
    """Functions and facts with which :func:`dcl_prob.montecarlo.simulate`
    runs one sampler."""

    # (spins, model) -> state of one chain. spins is int8 (L, L), or
    # (R, L, L) with one configuration per ladder temperature.
    init: Callable
    # model -> kernel(rng_key, state, temperature). temperature is a float32
    # scalar, or the (R,) ladder for a sampler with uses_ladder.
    build_kernel: Callable
    # (state, target) -> (spins (L, L), energy ()) of one chain at the
    # target temperature; target is the int32 ladder position.
    observe: Callable
    # info of one chain -> float32 () statistic averaged over production
    statistic: Callable
    models: tuple  # model classes the sampler accepts
    uses_ladder: bool  # True when the kernel runs a temperature ladder


def _observe_chain(state, target):
    del target
    return state.spins, state.energy


def _observe_ladder(state, target):
    return state.replicas.spins[target], state.replicas.energy[target]


def _init_ladder(spins, model):
    return init_exchange(spins, lambda s: checkerboard.init(s, model))


def _build_ladder_kernel(model):
    return build_exchange_kernel(
        checkerboard.build_kernel(model, "heat_bath"), lambda state: state.energy
    )


SAMPLERS = {
    "checkerboard": SamplerSpec(
        checkerboard.init,
        checkerboard.build_kernel,
        _observe_chain,
        lambda info: info.acceptance_rate,
        (IsingModel,),
        False,
    ),
    "heat-bath": SamplerSpec(
        checkerboard.init,
        lambda model: checkerboard.build_kernel(model, "heat_bath"),
        _observe_chain,
        lambda info: info.acceptance_rate,
        ALL_MODELS,
        False,
    ),
    "wolff": SamplerSpec(
        init_wolff,
        build_wolff_kernel,
        _observe_chain,
        lambda info: info.cluster_size.astype(jnp.float32),
        (IsingModel,),
        False,
    ),
    "swendsen-wang": SamplerSpec(
        init_swendsen_wang,
        build_swendsen_wang_kernel,
        _observe_chain,
        lambda info: info.mean_cluster_size,
        (PottsModel,),
        False,
    ),
    "parallel-tempering": SamplerSpec(
        _init_ladder,
        _build_ladder_kernel,
        _observe_ladder,
        lambda info: jnp.mean(info.swap_acceptance_rate),
        ALL_MODELS,
        True,
    ),
}

DEFAULT_SAMPLERS = {
    IsingModel.name: "wolff",
    IsingNNNModel.name: "heat-bath",
    PottsModel.name: "swendsen-wang",
    ClockModel.name: "heat-bath",
    EdwardsAndersonModel.name: "parallel-tempering",
}


def resolve_sampler(model, sampler: str | None) -> str:
    """Return the name of the sampler that runs ``model``, after checking it.

    None selects :data:`DEFAULT_SAMPLERS` of the model, and
    ``"checkerboard"`` selects ``"heat-bath"`` for models other than the
    Ising model.

    Raises:
        ValueError: for an unknown model or sampler, or a sampler that does
            not accept the model.
    """
    if not isinstance(model, ALL_MODELS):
        raise ValueError(
            f"model {model!r} is invalid: use one of the models of "
            "dcl_prob.hamiltonians"
        )
    if sampler is None:
        return DEFAULT_SAMPLERS[model.name]
    if sampler not in SAMPLERS:
        raise ValueError(
            f"sampler={sampler!r} is invalid: use one of {sorted(SAMPLERS)}"
        )
    if sampler == "checkerboard" and not isinstance(model, IsingModel):
        return "heat-bath"
    if not isinstance(model, SAMPLERS[sampler].models):
        fitting = [
            name for name, spec in SAMPLERS.items() if isinstance(model, spec.models)
        ]
        raise ValueError(
            f"sampler={sampler!r} is invalid for the {model.name!r} model: use one "
            f"of {fitting}"
        )
    return sampler


def temperature_ladder(temperature: float, temperatures=None) -> tuple[np.ndarray, int]:
    """Return the parallel tempering ladder and the position of ``temperature``.

    Args:
        temperature: the target temperature.
        temperatures: an increasing ladder that contains ``temperature``
            (relative tolerance 1e-6), or None for :data:`DEFAULT_N_REPLICAS`
            temperatures spaced geometrically from ``temperature`` to
            ``DEFAULT_LADDER_RATIO * temperature``.

    Returns:
        ``(ladder, target)``: float32 ladder of shape ``(R,)`` and the
        position of the target in it.

    Raises:
        ValueError: if the ladder has fewer than two temperatures, is not
            strictly increasing, has a value that is not positive and
            finite, or does not contain ``temperature``.
    """
    if temperatures is None:
        ladder = np.geomspace(
            temperature, DEFAULT_LADDER_RATIO * temperature, DEFAULT_N_REPLICAS
        )
        return ladder.astype(np.float32), 0
    ladder = np.asarray(temperatures, dtype=np.float64)
    if ladder.ndim != 1 or ladder.size < 2:
        raise ValueError(
            f"temperatures of shape {ladder.shape} are invalid: pass a 1-D ladder "
            "of at least two temperatures"
        )
    if not np.all(np.isfinite(ladder) & (ladder > 0)):
        raise ValueError(
            f"temperatures={ladder.tolist()} are invalid: every temperature must "
            "be positive and finite (k_B = 1)"
        )
    if np.any(np.diff(ladder) <= 0):
        raise ValueError(
            f"temperatures={ladder.tolist()} are invalid: sort the ladder in "
            "strictly increasing order"
        )
    matches = np.flatnonzero(np.isclose(ladder, temperature, rtol=1e-6, atol=0.0))
    if matches.size == 0:
        raise ValueError(
            f"temperatures={ladder.tolist()} do not contain the target "
            f"temperature {temperature}; add it to the ladder"
        )
    return ladder.astype(np.float32), int(matches[0])
