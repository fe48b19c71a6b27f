"""Exact thermodynamics of any lattice model by summing over all its states.

Works for every model of :mod:`dcl_prob.hamiltonians` on tiny periodic
lattices: up to :data:`MAX_ENUMERATION_STATES` configurations, which covers
4 x 4 two-state models (65 536 states), 3 x 3 models with q = 3 or 4
(19 683 and 262 144 states), and 2 x 2 models with up to 22 states. The energies
come from the model's own ``energy`` evaluated in float64 (inside
``jax.enable_x64(True)``), so for the Ising model they agree with
:func:`dcl_prob.exact.enumerate_ising`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dcl_prob.lattice import check_lattice_size

__all__ = [
    "MAX_ENUMERATION_STATES",
    "ModelEnumeration",
    "all_states",
    "configuration_index",
    "enumerate_model",
]

# 2**18 = 262 144 configurations, the 3 x 3 clock model with q = 4: about 2 MB
# of int8 states and 2 MB of float64 energies.
MAX_ENUMERATION_STATES = 2**18
# Configurations per energy evaluation, to bound the memory of the float64
# intermediates.
_BATCH = 2**15


class ModelEnumeration(NamedTuple):
    """Exact Boltzmann distribution and thermodynamics of one model at one T."""

    # int8, shape (n_states**N, L, L): every configuration, in the order of
    # all_states(L, model.state_values); read-only, shared between calls
    configs: np.ndarray
    probabilities: np.ndarray  # float64, shape (n_states**N,): exp(-H/T) / Z
    # float64, shape (n_states**N,): total energy H; read-only, shared
    energies: np.ndarray
    log_z: float  # total ln Z
    free_energy: float  # -T ln Z / N
    energy: float  # <H> / N
    # <model.order_parameter(s)>, from float32 order parameters
    order_parameter: float
    heat_capacity: float  # (<H^2> - <H>^2) / (N T^2)


def all_states(L: int, state_values) -> np.ndarray:
    """Return every configuration of an ``L x L`` lattice, int8 ``(n**N, L, L)``.

    ``n = len(state_values)`` and ``N = L * L``. Configuration ``k`` has
    ``state_values[d]`` at flat site ``j`` (row-major), where ``d`` is digit
    ``N - 1 - j`` of ``k`` written in base ``n``: the first site changes
    slowest, and index 0 has ``state_values[0]`` everywhere.

    Raises:
        ValueError: if ``L`` is invalid, fewer than two values are given, or
            there are more than :data:`MAX_ENUMERATION_STATES` configurations.
    """
    L = check_lattice_size(L)
    values = np.asarray(state_values, dtype=np.int8)
    n_values, n_sites = values.size, L * L
    if values.ndim != 1 or n_values < 2:
        raise ValueError(
            f"state_values={values.tolist()} are invalid: pass at least two values"
        )
    if n_values**n_sites > MAX_ENUMERATION_STATES:
        raise ValueError(
            f"L={L} with {n_values} states per site has {n_values}**{n_sites} "
            f"configurations, more than the {MAX_ENUMERATION_STATES} that can be "
            "enumerated; use a smaller lattice"
        )
    index = np.arange(n_values**n_sites, dtype=np.int64)
    digits = np.empty((index.size, n_sites), dtype=np.int64)
    for site in range(n_sites - 1, -1, -1):
        index, digits[:, site] = np.divmod(index, n_values)
    return values[digits].reshape(-1, L, L)


def configuration_index(spins, state_values) -> np.ndarray:
    """Return the index in :func:`all_states` of each configuration of ``spins``.

    Args:
        spins: int array ``(..., L, L)`` of values in ``state_values``.
        state_values: the sorted allowed values, as ``model.state_values``.

    Returns:
        int64 array of shape ``(...)``.

    Raises:
        ValueError: if ``spins`` contains a value outside ``state_values``.
    """
    spins = np.asarray(spins)
    values = np.asarray(state_values)
    digits = np.searchsorted(values, spins)
    inside = digits < values.size
    if not np.all(inside) or not np.all(values[digits[inside]] == spins[inside]):
        raise ValueError(f"spins contain values outside state_values={values.tolist()}")
    flat = digits.reshape(*spins.shape[:-2], -1).astype(np.int64)
    weights = values.size ** np.arange(flat.shape[-1] - 1, -1, -1, dtype=np.int64)
    return flat @ weights


def _evaluate(function, configs: np.ndarray) -> np.ndarray:
    """Evaluate ``function`` in float64 on batches of ``configs``."""
    parts = []
    with jax.enable_x64(True):
        # One compilation, which is faster than compiling every operation of
        # an eager evaluation.
        compiled = jax.jit(function)
        for start in range(0, len(configs), _BATCH):
            batch = jnp.asarray(configs[start : start + _BATCH])
            parts.append(np.asarray(compiled(batch), dtype=np.float64))
    return np.concatenate(parts)


@functools.lru_cache(maxsize=8)
def _enumerate_observables(model, L: int):
    """Return all configurations of ``model``, their energies and order
    parameters, read-only and cached, because they do not depend on T."""
    configs = all_states(L, model.state_values)
    energies = _evaluate(model.energy, configs)
    order = _evaluate(model.order_parameter, configs)
    for array in (configs, energies, order):
        array.setflags(write=False)
    return configs, energies, order


def enumerate_model(model, L: int, T: float) -> ModelEnumeration:
    """Compute the exact Boltzmann distribution of ``model`` at ``T``.

    Args:
        model: a model of :mod:`dcl_prob.hamiltonians`.
        L: linear lattice size; for the spin glass the ``L`` of its bonds.
        T: temperature in units of energy (``k_B = 1``), finite and > 0.

    Returns:
        :class:`ModelEnumeration`; ``log_z`` is the total ``ln Z``, the
        energy, free energy and heat capacity are per spin.

    Raises:
        ValueError: if ``T`` is not a finite number > 0, ``L`` does not match
            the spin glass, or the lattice has too many configurations (see
            :func:`all_states`).
    """
    T_value = float(T)
    if not (math.isfinite(T_value) and T_value > 0):
        raise ValueError(
            f"T={T!r} is invalid: pass one finite temperature > 0 (k_B = 1)"
        )
    if getattr(model, "L", L) != L:
        raise ValueError(
            f"L={L} is invalid for a spin glass with bonds of L={model.L}; "
            f"pass L={model.L}"
        )
    configs, energies, order = _enumerate_observables(model, check_lattice_size(L))

    log_weight = -energies / T_value
    top = log_weight.max()
    weight = np.exp(log_weight - top)
    log_z = top + math.log(weight.sum())
    probabilities = weight / weight.sum()

    n_sites = L * L
    mean_energy = float(probabilities @ energies)
    variance = float(probabilities @ (energies - mean_energy) ** 2)
    return ModelEnumeration(
        configs=configs,
        probabilities=probabilities,
        energies=energies,
        log_z=float(log_z),
        free_energy=float(-T_value * log_z / n_sites),
        energy=mean_energy / n_sites,
        order_parameter=float(probabilities @ order),
        heat_capacity=variance / (n_sites * T_value**2),
    )
