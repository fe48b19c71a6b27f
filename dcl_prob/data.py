"""Reading and writing spin data sets (HDF5, and NPZ for reading).

An HDF5 data set contains the dataset ``spins`` (int8, shape ``(n, L, L)``)
and root attributes that describe how the samples were made. They are
``model``, ``lattice`` (``"square_periodic"``), ``L``, the couplings (``J``
and ``h`` for the Ising model, ``q`` and ``J`` for Potts and clock models),
``temperature``, ``sampler``, ``seed``, ``encoding``, ``tau_int_energy``,
``tau_int_abs_m`` and ``thin``. A spin glass (``model="spin-glass"``) also
has the dataset ``bonds``, float32 of shape ``(2, L, L)`` as in
:class:`dcl_prob.hamiltonians.EdwardsAndersonModel`. An NPZ file contains
the arrays ``spins`` and ``temperature``, and optionally ``bonds`` and
single-number arrays such as ``q``, which become attributes. Neither format
is ever read with pickle.

Encodings: ``"pm1"`` stores -1/+1 spins, ``"01"`` 0/1 spins (0 is spin -1,
read only), and ``"potts"`` the states ``0 .. q-1`` of a Potts or clock
model, with the number of states in the attribute ``q``.
"""

from __future__ import annotations

import logging
import os
import secrets
import zipfile
from typing import NamedTuple

import h5py
import numpy as np

from dcl_prob.data_validation import (
    ENCODINGS,
    SPIN_GLASS_MODEL,
    check_bonds_for_model,
    validate_q,
    validate_spins,
    validate_temperature,
)

__all__ = [
    "ENCODINGS",
    "REQUIRED_ATTRS",
    "Dataset",
    "check_output_path",
    "load_dataset",
    "save_dataset",
]

logger = logging.getLogger(__name__)

REQUIRED_ATTRS = ("model", "temperature")
# Models whose states are 0..q-1 and stored with the "potts" encoding.
POTTS_ENCODED_MODELS = ("potts", "clock")
_SPINS_DATASET = "spins"
_BONDS_DATASET = "bonds"


class Dataset(NamedTuple):
    """A data set as loaded by :func:`load_dataset`."""

    # int8, shape (n, L, L): -1/+1 spins whatever the file's encoding, or
    # the states 0..q-1 for the "potts" encoding
    spins: np.ndarray
    temperature: float  # temperature of the samples (k_B = 1)
    attrs: dict  # the file's attributes as Python scalars, strings and lists
    # float32, shape (2, L, L): couplings of a spin glass; None for the other
    # models
    bonds: np.ndarray | None = None


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Check that a data set can be written to ``path``, before a long run.

    It checks only that the file is absent (unless ``overwrite``) and that its
    directory exists, not write permission or free space.

    Args:
        path: the output file.
        overwrite: accept an existing ``path``, which the caller then replaces.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: if the directory of ``path`` does not exist.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"output file {path} already exists; pass --force "
            "(overwrite=True from Python) to replace it, or choose another path"
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
    bonds=None,
) -> None:
    """Write spins and their attributes to the HDF5 file ``path``, atomically.

    The file is written to a temporary file in the same directory and then
    moved to ``path``, so ``path`` never contains a partly written file. The
    attributes ``lattice``, ``L`` and ``encoding`` are added when missing;
    the encoding is ``"potts"`` for the models ``"potts"`` and ``"clock"``
    and ``"pm1"`` for the others.

    Args:
        path: output file.
        spins: int8 array of shape ``(n, L, L)``: -1/+1 spins, or the states
            ``0 .. q-1`` of a Potts or clock model.
        attrs: attributes; must contain ``model`` and ``temperature``, and
            ``q`` for the ``"potts"`` encoding. See
            :meth:`dcl_prob.montecarlo.SimulationResult.dataset_attrs`.
        overwrite: replace an existing file.
        bonds: float array ``(2, L, L)`` of the couplings, required for
            ``model="spin-glass"`` and rejected for other models; stored as
            the float32 dataset ``bonds``.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: if the directory of ``path`` does not exist.
        ValueError: for spins that are not of the encoding or not of shape
            ``(n, L, L)`` with ``n >= 1``, for missing or invalid attributes,
            and for missing, unexpected or invalid bonds.
    """
    path = os.fspath(path)
    model = attrs.get("model")
    default_encoding = "potts" if model in POTTS_ENCODED_MODELS else "pm1"
    encoding = attrs.get("encoding", default_encoding)
    if encoding not in ("pm1", "potts"):
        raise ValueError(
            f"attrs['encoding']={encoding!r} is invalid: save_dataset stores "
            "-1/+1 spins ('pm1') or Potts states 0..q-1 ('potts')"
        )
    q = validate_q(attrs.get("q"), source="attrs['q']") if encoding == "potts" else None
    spins = validate_spins(np.asarray(spins), encoding, source="spins", q=q)
    L = spins.shape[-1]

    missing = [key for key in REQUIRED_ATTRS if key not in attrs]
    if missing:
        raise ValueError(
            f"attrs is missing {missing}: a data set needs at least "
            f"{list(REQUIRED_ATTRS)}"
        )
    validate_temperature(attrs["temperature"], source="attrs['temperature']")
    attrs = {"lattice": "square_periodic", "L": L, **attrs, "encoding": encoding}
    if attrs["L"] != L:
        raise ValueError(f"attrs['L']={attrs['L']!r} does not match spins of L={L}")
    bonds = check_bonds_for_model(bonds, model, L, source="bonds")
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
            if bonds is not None:
                file.create_dataset(_BONDS_DATASET, data=bonds, dtype=np.float32)
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
            "(overwrite=True from Python) to replace it, or choose another path"
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
            ``temperature``. Spin-glass data also have ``bonds``.
        encoding: ``"pm1"`` (-1/+1 values), ``"01"`` (0/1 values, 0 is
            spin -1) or ``"potts"`` (states ``0 .. q-1``, with ``q`` from the
            file). None uses the file's ``encoding`` attribute, else
            ``"potts"`` for the models ``"potts"`` and ``"clock"`` and
            ``"pm1"`` for the others.

    Returns:
        A :class:`Dataset` with int8 spins of shape ``(n, L, L)``: -1/+1, or
        the Potts states for the ``"potts"`` encoding, and the float32 bonds
        of a spin glass.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is neither HDF5 nor NPZ, lacks spins or a
            temperature, its spins are empty, of the wrong shape, or not of
            the encoding, ``q`` is missing or invalid for the ``"potts"``
            encoding, or the bonds of a spin glass are missing or invalid.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data set {path} not found")
    if h5py.is_hdf5(path):
        raw_spins, attrs, raw_bonds = _read_hdf5(path)
    elif zipfile.is_zipfile(path):
        raw_spins, attrs, raw_bonds = _read_npz(path)
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
    temperature = validate_temperature(
        attrs["temperature"], source=f"temperature in {path}"
    )
    model = attrs.get("model")
    if encoding is None:
        default = "potts" if model in POTTS_ENCODED_MODELS else "pm1"
        encoding = attrs.get("encoding", default)
    q = None
    if encoding == "potts":
        q = validate_q(attrs.get("q"), source=f"q in {path}")
    spins = validate_spins(raw_spins, encoding, source=path, q=q)
    if "L" in attrs and attrs["L"] != spins.shape[-1]:
        raise ValueError(
            f"{path} is inconsistent: attribute L={attrs['L']!r} but the spins "
            f"have shape {spins.shape}"
        )
    # Files without a model attribute, such as NPZ files, may carry bonds.
    bonds_model = SPIN_GLASS_MODEL if model is None and raw_bonds is not None else model
    bonds = check_bonds_for_model(
        raw_bonds, bonds_model, spins.shape[-1], source=f"bonds in {path}"
    )
    return Dataset(spins, temperature, attrs, bonds)


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
        bonds = None
        if _BONDS_DATASET in file:
            node = file[_BONDS_DATASET]
            if not isinstance(node, h5py.Dataset):
                raise ValueError(f"'bonds' in {path} is a group, not a dataset")
            bonds = node[()]
        attrs = {key: _python_value(value) for key, value in file.attrs.items()}
    return spins, attrs, bonds


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
    bonds = arrays.pop(_BONDS_DATASET, None)
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
    return spins, attrs, bonds
