"""Checks of the arrays and attributes of spin data sets, for :mod:`dcl_prob.data`.

Every check raises ``ValueError`` with the invalid value and the fix, and
returns the value in the form that the data set stores.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ENCODINGS",
    "MAX_POTTS_STATES",
    "SPIN_GLASS_MODEL",
    "check_bonds_for_model",
    "validate_q",
    "validate_spins",
    "validate_temperature",
]

# Spin encodings: "pm1" stores -1/+1, "01" stores 0/1 (0 is spin -1),
# "potts" stores the states 0..q-1.
ENCODINGS = ("pm1", "01", "potts")
SPIN_GLASS_MODEL = "spin-glass"
MAX_POTTS_STATES = 127


def validate_q(value, *, source: str) -> int:
    """Check the number of Potts states ``q`` and return it as an ``int``.

    Raises:
        ValueError: if ``value`` is missing or not an integer from 2 to
            :data:`MAX_POTTS_STATES`; the message names ``source``.
    """
    if value is None:
        raise ValueError(
            f"{source} is missing: the 'potts' encoding needs the number of "
            "states q; store it as the attribute 'q' (HDF5) or array 'q' (NPZ)"
        )
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or int(value) != value
        or not 2 <= value <= MAX_POTTS_STATES
    ):
        raise ValueError(
            f"{source}={value!r} is invalid: the number of Potts states must be "
            f"an integer from 2 to {MAX_POTTS_STATES}"
        )
    return int(value)


def check_bonds_for_model(bonds, model, L: int, *, source: str):
    """Check the bonds of a data set and return them as float32 for a spin
    glass, or None for the other models, which have no bonds.

    Args:
        bonds: the couplings ``(2, L, L)`` (energy units), or None.
        model: the data set's ``model`` attribute.
        L: linear lattice size of the spins.
        source: where the bonds came from, named in error messages.

    Returns:
        float32 ``(2, L, L)`` for ``model="spin-glass"``, else None.

    Raises:
        ValueError: for missing bonds of a spin glass, bonds of another model,
            or bonds of the wrong dtype, shape or with non-finite values.
    """
    if model != SPIN_GLASS_MODEL:
        if bonds is not None:
            raise ValueError(
                f"{source} were given for model={model!r}, which has uniform "
                "couplings; pass bonds only with model='spin-glass'"
            )
        return None
    if bonds is None:
        raise ValueError(
            f"{source} are missing: a data set of model='spin-glass' needs its "
            "(2, L, L) couplings; pass bonds=model.bonds (HDF5 dataset or NPZ "
            "array 'bonds')"
        )
    bonds = np.asarray(bonds)
    if bonds.dtype.kind not in "iuf":
        raise ValueError(f"{source} have dtype {bonds.dtype}; expected numbers")
    if bonds.shape != (2, L, L):
        raise ValueError(
            f"{source} have shape {bonds.shape}; expected (2, {L}, {L}) for spins "
            f"of L={L}"
        )
    if not np.all(np.isfinite(bonds)):
        raise ValueError(f"{source} contain NaN or infinite values")
    return bonds.astype(np.float32)


def validate_temperature(value, *, source: str) -> float:
    """Check a temperature (units of J/k_B) and return it as a ``float`` > 0.

    Args:
        value: the temperature as read, a number or a one-number array.
        source: where the value came from, named in the error message.

    Raises:
        ValueError: if ``value`` is not a finite number > 0.
    """
    try:
        temperature = float(value)
    except (TypeError, ValueError):
        temperature = math.nan
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"{source}={value!r} is invalid: the temperature must be a positive, "
            "finite number"
        )
    return temperature


def validate_spins(
    spins: np.ndarray, encoding: str, *, source: str, q: int | None = None
) -> np.ndarray:
    """Check raw spins of the given encoding and return int8 spins.

    The result is -1/+1 for the encodings ``"pm1"`` and ``"01"`` and the
    states ``0 .. q-1`` for ``"potts"``, which needs ``q``.

    Args:
        spins: integer or integer-valued float array ``(n, L, L)``.
        encoding: ``"pm1"``, ``"01"`` or ``"potts"``.
        source: where the spins came from, named in error messages.
        q: number of Potts states, for ``"potts"`` only.

    Returns:
        int8 array ``(n, L, L)``.

    Raises:
        ValueError: for a wrong shape, an empty or non-square lattice, NaN or
            non-integer values, or values outside the encoding, with a hint
            at the encoding that fits.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding={encoding!r} is invalid: use one of {ENCODINGS}")
    if spins.dtype.kind not in "biuf":
        raise ValueError(
            f"spins in {source} have dtype {spins.dtype}; expected numbers"
        )
    if spins.ndim != 3:
        hint = ""
        if spins.ndim == 2 and math.isqrt(spins.shape[1]) ** 2 == spins.shape[1]:
            side = math.isqrt(spins.shape[1])
            hint = f"; for flattened lattices use spins.reshape(-1, {side}, {side})"
        elif spins.ndim == 2:
            hint = "; for a single configuration use spins[None]"
        raise ValueError(
            f"spins in {source} have shape {spins.shape}; expected "
            f"(n_samples, L, L){hint}"
        )
    n, rows, columns = spins.shape
    if rows != columns:
        raise ValueError(
            f"spins in {source} have shape {spins.shape}: the lattice is not "
            "square (L x L)"
        )
    if rows < 2:
        raise ValueError(f"spins in {source} have L={rows}; L must be at least 2")
    if n == 0:
        raise ValueError(f"spins in {source} are empty: the data set has 0 samples")

    if spins.dtype.kind == "f":
        if not np.all(np.isfinite(spins)):
            raise ValueError(f"spins in {source} contain NaN or infinite values")
        if np.any(spins != np.round(spins)):
            raise ValueError(
                f"spins in {source} contain non-integer values; expected integer spins"
            )
    values = np.unique(spins)
    if encoding == "potts":
        _check_potts_values(values, q, source=source)
        return spins.astype(np.int8)
    allowed = {"pm1": (-1, 1), "01": (0, 1)}[encoding]
    if not np.isin(values, allowed).all():
        shown = values[:10].tolist()
        hint = ""
        if encoding == "pm1" and np.isin(values, (0, 1)).all():
            hint = "; the values are 0/1, so pass encoding='01' (--encoding 01)"
        elif encoding == "01" and np.isin(values, (-1, 1)).all():
            hint = "; the values are -1/+1, so pass encoding='pm1' (--encoding pm1)"
        elif values.min() >= 0 and values.max() <= MAX_POTTS_STATES - 1:
            hint = (
                "; for the states 0..q-1 of a Potts or clock model use "
                "encoding='potts' with the attribute q"
            )
        expected = "-1/+1" if encoding == "pm1" else "0/1"
        raise ValueError(
            f"spins in {source} contain the values {shown}, which are not "
            f"{expected}{hint}"
        )
    spins = spins.astype(np.int8)
    if encoding == "01":
        spins = 2 * spins - 1
    return spins.astype(np.int8, copy=False)


def _check_potts_values(values: np.ndarray, q: int, *, source: str) -> None:
    """Reject sorted unique ``values`` outside the Potts states ``0 .. q-1``."""
    outside = values[(values < 0) | (values >= q)]
    if outside.size == 0:
        return
    hint = "; set the attribute q to the number of states of the model"
    if np.isin(values, (-1, 1)).all():
        hint = "; the values are -1/+1, so pass encoding='pm1' (--encoding pm1)"
    raise ValueError(
        f"spins in {source} contain the values {outside[:10].tolist()}, which are "
        f"not Potts states 0..{q - 1} of q={q}{hint}"
    )
