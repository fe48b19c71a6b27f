"""Reading and writing spin data sets (HDF5, and NPZ for reading).

An HDF5 data set contains the dataset ``spins`` (int8, shape ``(n, L, L)``)
and root attributes that describe how the samples were made. They are
``model``, ``lattice`` (``"square_periodic"``), ``L``, the couplings (``J``
and ``h`` for the Ising model), ``temperature``, ``sampler``, ``seed``,
``encoding`` (``"pm1"`` for -1/+1 spins), ``tau_int_energy``,
``tau_int_abs_m`` and ``thin``. An NPZ file contains the arrays ``spins``
and ``temperature``. Neither format is ever read with pickle.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import zipfile
from typing import NamedTuple

import h5py
import numpy as np

__all__ = [
    "ENCODINGS",
    "REQUIRED_ATTRS",
    "Dataset",
    "check_output_path",
    "load_dataset",
    "save_dataset",
]

logger = logging.getLogger(__name__)

# Spin encodings: "pm1" stores -1/+1, "01" stores 0/1 (0 is spin -1).
ENCODINGS = ("pm1", "01")
REQUIRED_ATTRS = ("model", "temperature")
_SPINS_DATASET = "spins"


class Dataset(NamedTuple):
    """A data set as loaded by :func:`load_dataset`."""

    spins: (
        np.ndarray
    )  # int8, shape (n, L, L), values -1/+1 whatever the file's encoding
    temperature: float  # temperature of the samples (k_B = 1)
    attrs: dict  # the file's attributes as Python scalars, strings and lists


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Check that a data set can be written to ``path``, before a long run.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: if the directory of ``path`` does not exist.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"output file {path} already exists; pass --force (overwrite=True) "
            "to replace it, or choose another path"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"directory {directory} of output file {path} does not exist; "
            "create it first"
        )


def _attr_value(key: str, value):
    """Convert one attribute to a type that HDF5 stores and reads back."""
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array
    raise ValueError(
        f"attribute {key}={value!r} is invalid: use a string, a number or a "
        "list of numbers"
    )


def save_dataset(
    path: str | os.PathLike,
    spins,
    *,
    attrs: dict,
    overwrite: bool = False,
) -> None:
    """Write spins and their attributes to the HDF5 file ``path``, atomically.

    The file is written to a temporary file in the same directory and then
    moved to ``path``, so ``path`` never contains a partly written file. The
    attributes ``lattice``, ``L`` and ``encoding`` are added when missing.

    Args:
        path: output file.
        spins: -1/+1 spins of shape ``(n, L, L)``, stored as int8.
        attrs: attributes; must contain ``model`` and ``temperature``. See
            :meth:`dcl_prob.montecarlo.SimulationResult.dataset_attrs`.
        overwrite: replace an existing file.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: if the directory of ``path`` does not exist.
        ValueError: for spins that are not -1/+1 of shape ``(n, L, L)`` with
            ``n >= 1``, or for missing or invalid attributes.
    """
    path = os.fspath(path)
    spins = _validate_spins(np.asarray(spins), "pm1", source="spins")
    L = spins.shape[-1]

    missing = [key for key in REQUIRED_ATTRS if key not in attrs]
    if missing:
        raise ValueError(
            f"attrs is missing {missing}: a data set needs at least "
            f"{list(REQUIRED_ATTRS)}"
        )
    _validate_temperature(attrs["temperature"], source="attrs['temperature']")
    attrs = {"lattice": "square_periodic", "L": L, "encoding": "pm1", **attrs}
    if attrs["L"] != L:
        raise ValueError(f"attrs['L']={attrs['L']!r} does not match spins of L={L}")
    if attrs["encoding"] != "pm1":
        raise ValueError(
            f"attrs['encoding']={attrs['encoding']!r} is invalid: save_dataset "
            "always stores -1/+1 spins, so the encoding is 'pm1'"
        )
    values = {key: _attr_value(key, value) for key, value in attrs.items()}

    check_output_path(path, overwrite=overwrite)
    directory = os.path.dirname(os.path.abspath(path))
    # h5py creates the temporary file itself (mode "x" fails if it exists), so
    # it gets the permissions of the umask, unlike tempfile.mkstemp's 0600.
    temporary = os.path.join(
        directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp"
    )
    try:
        with h5py.File(temporary, "x") as file:
            file.create_dataset(_SPINS_DATASET, data=spins, dtype=np.int8)
            for key, value in values.items():
                file.attrs[key] = value
        if overwrite:
            os.replace(temporary, path)
        else:
            _move_without_overwrite(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    logger.info(
        "wrote %d configurations of %d x %d spins to %s", len(spins), L, L, path
    )


def _move_without_overwrite(source: str, destination: str) -> None:
    """Move ``source`` to ``destination`` unless ``destination`` exists.

    ``os.link`` fails if the destination exists, which closes the race
    between the existence check and ``os.replace``. On file systems without
    hard links the check and ``os.replace`` are used.
    """
    try:
        os.link(source, destination)
    except FileExistsError:
        raise FileExistsError(
            f"output file {destination} already exists; pass --force "
            "(overwrite=True) to replace it, or choose another path"
        ) from None
    except OSError:
        check_output_path(destination)
        os.replace(source, destination)
        return
    os.remove(source)


def load_dataset(path: str | os.PathLike, *, encoding: str | None = None) -> Dataset:
    """Read spins and their temperature from an HDF5 or NPZ file.

    Args:
        path: an HDF5 file with dataset ``spins`` and attribute
            ``temperature``, or an NPZ file with arrays ``spins`` and
            ``temperature``.
        encoding: ``"pm1"`` (-1/+1 values) or ``"01"`` (0/1 values, 0 is
            spin -1). None uses the file's ``encoding`` attribute, else
            ``"pm1"``.

    Returns:
        A :class:`Dataset` with int8 -1/+1 spins of shape ``(n, L, L)``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is neither HDF5 nor NPZ, lacks spins or a
            temperature, or its spins are empty, of the wrong shape, or not
            of the encoding.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data set {path} not found")
    if h5py.is_hdf5(path):
        raw_spins, attrs = _read_hdf5(path)
    elif zipfile.is_zipfile(path):
        raw_spins, attrs = _read_npz(path)
    else:
        raise ValueError(
            f"{path} is neither an HDF5 nor an NPZ file; write the data set with "
            "`dcl simulate`, dcl_prob.data.save_dataset or numpy.savez"
        )

    if "temperature" not in attrs:
        raise ValueError(
            f"{path} has no temperature; store it as the attribute "
            "'temperature' (HDF5) or the array 'temperature' (NPZ)"
        )
    temperature = _validate_temperature(
        attrs["temperature"], source=f"temperature in {path}"
    )
    if encoding is None:
        encoding = attrs.get("encoding", "pm1")
    spins = _validate_spins(raw_spins, encoding, source=path)
    if "L" in attrs and attrs["L"] != spins.shape[-1]:
        raise ValueError(
            f"{path} is inconsistent: attribute L={attrs['L']!r} but the spins "
            f"have shape {spins.shape}"
        )
    return Dataset(spins, temperature, attrs)


def _python_value(value):
    """Convert an HDF5 or NumPy attribute value to a Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _python_value(value[()])
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_hdf5(path: str):
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{path} cannot be read as HDF5 ({error}); the file may be truncated "
            "or corrupt, so write it again"
        ) from None
    with file:
        if _SPINS_DATASET not in file:
            raise ValueError(
                f"{path} has no dataset 'spins'; it contains {sorted(file.keys())}"
            )
        node = file[_SPINS_DATASET]
        if not isinstance(node, h5py.Dataset):
            raise ValueError(f"'spins' in {path} is a group, not a dataset")
        spins = node[()]
        attrs = {key: _python_value(value) for key, value in file.attrs.items()}
    return spins, attrs


def _read_npz(path: str):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
        raise ValueError(
            f"{path} contains object arrays, which can only be read with pickle "
            "and are rejected; save plain numeric arrays with numpy.savez"
        ) from error

    if _SPINS_DATASET not in arrays:
        raise ValueError(f"{path} has no array 'spins'; it contains {sorted(arrays)}")
    spins = arrays.pop(_SPINS_DATASET)
    temperature = arrays.get("temperature")
    if temperature is not None and temperature.size != 1:
        raise ValueError(
            f"array 'temperature' in {path} has shape {temperature.shape}; it "
            "must contain one number"
        )
    # Other single-number arrays become attributes, as in an HDF5 file.
    attrs = {
        name: _python_value(array.reshape(()))
        for name, array in arrays.items()
        if array.size == 1
    }
    return spins, attrs


def _validate_temperature(value, *, source: str) -> float:
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


def _validate_spins(spins: np.ndarray, encoding: str, *, source: str) -> np.ndarray:
    """Check raw spins of the given encoding and return int8 -1/+1 spins."""
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
    allowed = {"pm1": (-1, 1), "01": (0, 1)}[encoding]
    if not np.isin(values, allowed).all():
        shown = values[:10].tolist()
        hint = ""
        if encoding == "pm1" and np.isin(values, (0, 1)).all():
            hint = "; the values are 0/1, so pass encoding='01' (--encoding 01)"
        if encoding == "01" and np.isin(values, (-1, 1)).all():
            hint = "; the values are -1/+1, so pass encoding='pm1' (--encoding pm1)"
        expected = "-1/+1" if encoding == "pm1" else "0/1"
        raise ValueError(
            f"spins in {source} contain the values {shown}, which are not "
            f"{expected}{hint}"
        )
    spins = spins.astype(np.int8)
    if encoding == "01":
        spins = 2 * spins - 1
    return spins.astype(np.int8, copy=False)
