"""Spin data sets read from HDF5 in batches, for data larger than memory.

:class:`StreamedSpins` opens the ``spins`` dataset of a file written by
:func:`dcl_prob.data.save_dataset` without loading it. Passed to
:func:`dcl_prob.fit.fit` in place of an array, it makes the fit read every
chunk's batches from the file, so the memory of a fit does not grow with the
number of configurations.

Which rows are held out for validation follows from a keyed hash of the row
index (:class:`RowSplit`), so neither the split nor the training rows need an
index array. Each chunk's batches are rows drawn uniformly with replacement
from the training rows by a NumPy generator seeded with the stream's key and
the chunk index (:class:`ChunkBatches`), so a resumed fit reads the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator

import h5py
import jax
import numpy as np
from jax.sharding import Mesh

from dcl_prob import sharding
from dcl_prob.data import POTTS_ENCODED_MODELS, _python_value
from dcl_prob.data_validation import (
    SPIN_GLASS_MODEL,
    check_bonds_for_model,
    validate_q,
    validate_spins,
    validate_temperature,
)

__all__ = ["ChunkBatches", "RowSplit", "StreamedSpins", "key_seed"]

logger = logging.getLogger(__name__)

# Bytes of spins read at a time when scanning the whole file.
SCAN_BLOCK_BYTES = 16 << 20


def key_seed(key: jax.Array) -> list[int]:
    """Return the words of a JAX PRNG key, to seed a NumPy generator.

    Args:
        key: a JAX PRNG key, such as ``jax.random.key(seed)``.

    Returns:
        The key data of ``key``, flattened, as non-negative Python ints: two
        32-bit words for JAX's default threefry key.
    """
    return np.asarray(jax.random.key_data(key)).astype(np.uint64).ravel().tolist()


class StreamedSpins:
    """The spins of an HDF5 data set, read on demand.

    Opening the file reads its attributes and then the spins once, block by
    block, to check their values and compute their SHA-256 digest. At most
    one block of :data:`SCAN_BLOCK_BYTES` is in memory at a time.

    Args:
        path: HDF5 file with the dataset ``spins`` and the attribute
            ``temperature``, as written by :func:`dcl_prob.data.save_dataset`.
        encoding: as for :func:`dcl_prob.data.load_dataset`.

    Attributes:
        path: the file, as :func:`os.fspath` returns it.
        shape: ``(n, L, L)``, the shape of the dataset ``spins`` as a tuple
            of Python ints.
        temperature: temperature of the samples in units of J/k_B
            (``k_B = 1``).
        attrs: the file's attributes as Python values.
        encoding: the encoding the spins are decoded from: ``"pm1"``,
            ``"01"`` or ``"potts"``.
        q: number of states for the ``"potts"`` encoding, else None.
        bonds: float32 ``(2, L, L)`` couplings of a spin glass, else None.
        values: sorted values of the spins after decoding (-1/+1 or
            ``0 .. q-1``), for :func:`dcl_prob.fit_config.check_spins`.
        sha256: hex digest of the decoded int8 spins in file order, equal to
            that of the array :func:`dcl_prob.data.load_dataset` returns.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for the same problems as
            :func:`dcl_prob.data.load_dataset`; NPZ files are rejected
            because they cannot be read in parts.
    """

    def __init__(self, path: str | os.PathLike, *, encoding: str | None = None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"data set {self.path} not found")
        if not h5py.is_hdf5(self.path):
            raise ValueError(
                f"{self.path} is not an HDF5 file; only HDF5 data sets can be "
                "streamed, so load NPZ files with dcl_prob.data.load_dataset"
            )
        self._file = h5py.File(self.path, "r")
        try:
            self._open(encoding)
        except BaseException:
            self._file.close()
            raise

    def _open(self, encoding) -> None:
        file = self._file
        node = file.get("spins")
        if not isinstance(node, h5py.Dataset):
            raise ValueError(
                f"{self.path} has no dataset 'spins'; it contains {sorted(file.keys())}"
            )
        self._dataset = node
        self.attrs = {key: _python_value(value) for key, value in file.attrs.items()}
        if "temperature" not in self.attrs:
            raise ValueError(
                f"{self.path} has no temperature; store it as the attribute "
                "'temperature'"
            )
        self.temperature = validate_temperature(
            self.attrs["temperature"], source=f"temperature in {self.path}"
        )
        model = self.attrs.get("model")
        if encoding is None:
            default = "potts" if model in POTTS_ENCODED_MODELS else "pm1"
            encoding = self.attrs.get("encoding", default)
        self.encoding = encoding
        self.q = None
        if encoding == "potts":
            self.q = validate_q(self.attrs.get("q"), source=f"q in {self.path}")
        if node.ndim >= 1 and node.shape[0] > 0:
            # The first row checks the dtype, rank and lattice shape.
            validate_spins(node[:1], encoding, source=self.path, q=self.q)
        else:
            validate_spins(node[()], encoding, source=self.path, q=self.q)
        self.shape = tuple(int(size) for size in node.shape)
        L = self.shape[-1]
        if "L" in self.attrs and self.attrs["L"] != L:
            raise ValueError(
                f"{self.path} is inconsistent: attribute L={self.attrs['L']!r} but "
                f"the spins have shape {self.shape}"
            )
        raw_bonds = file["bonds"][()] if "bonds" in file else None
        bonds_model = (
            SPIN_GLASS_MODEL if model is None and raw_bonds is not None else model
        )
        self.bonds = check_bonds_for_model(
            raw_bonds, bonds_model, L, source=f"bonds in {self.path}"
        )
        self.values, self.sha256 = self._scan()

    def _scan(self) -> tuple[np.ndarray, str]:
        digest = hashlib.sha256()
        raw_values = np.zeros(0, self._dataset.dtype)
        counts = np.zeros(256, np.int64)
        small_integers = self._dataset.dtype in (np.int8, np.uint8)
        rows = max(1, SCAN_BLOCK_BYTES // max(1, self.row_bytes))
        for start in range(0, len(self), rows):
            raw = self._dataset[start : start + rows]
            if small_integers:
                counts += np.bincount(raw.view(np.uint8).ravel(), minlength=256)
            else:
                raw_values = np.union1d(raw_values, np.unique(raw))
            digest.update(np.ascontiguousarray(self._decode(raw)).tobytes())
        if small_integers:
            raw_values = np.flatnonzero(counts).astype(np.uint8)
            raw_values = np.sort(raw_values.view(self._dataset.dtype))
        # Each value as a 2 x 2 lattice, so the checks of load_dataset apply.
        lattices = np.broadcast_to(raw_values[:, None, None], (raw_values.size, 2, 2))
        validate_spins(lattices, self.encoding, source=self.path, q=self.q)
        values = np.unique(self._decode(raw_values))
        return values, digest.hexdigest()

    def _decode(self, raw: np.ndarray) -> np.ndarray:
        spins = raw.astype(np.int8)
        if self.encoding == "01":
            spins = (2 * spins - 1).astype(np.int8)
        return spins

    @property
    def row_bytes(self) -> int:
        """Bytes of one configuration in the file."""
        return int(np.prod(self.shape[1:])) * self._dataset.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows) -> np.ndarray:
        """Return the decoded int8 configurations at ``rows``, any shape.

        Each distinct row is read once, in increasing order.

        Args:
            rows: integer row indices in ``0 .. n-1``, an array of any shape.
                A row may appear more than once.

        Returns:
            int8 array of shape ``rows.shape + (L, L)``: -1/+1 spins, or the
            states ``0 .. q-1`` for the ``"potts"`` encoding.

        Raises:
            IndexError: if a row is outside ``0 .. n-1``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        unique, inverse = np.unique(rows.ravel(), return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= len(self)):
            raise IndexError(
                f"rows {unique[0]}..{unique[-1]} are outside 0..{len(self) - 1}"
            )
        spins = self._decode(self._dataset[unique])
        return spins[inverse].reshape(*rows.shape, *self.shape[1:])

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Return the decoded int8 configurations ``start .. stop - 1``.

        Args:
            start: first row.
            stop: one past the last row. The caller keeps
                ``0 <= start <= stop <= n``, because this method does not
                check the range.

        Returns:
            int8 array ``(stop - start, L, L)``: -1/+1 spins, or the states
            ``0 .. q-1`` for the ``"potts"`` encoding.
        """
        return self._decode(self._dataset[start:stop])

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> StreamedSpins:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StreamedSpins({self.path!r}, shape={self.shape})"


def _mix(rows: np.ndarray, seed: int) -> np.ndarray:
    """Map row indices to well-mixed 64-bit words with the SplitMix64 finalizer.

    NumPy's uint64 arithmetic wraps around, as the finalizer needs.
    """
    z = rows.astype(np.uint64) ^ np.uint64(seed)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class RowSplit:
    """A fixed split of ``n`` rows into training and validation rows.

    Row ``i`` is held out when a keyed hash of ``i``, read as a number in
    ``[0, 1)``, is below ``fraction``, so about ``fraction * n`` rows are held
    out (a binomial count) and membership needs no stored index set. Data
    sets of fewer than 20 rows hold out none, as an in-memory fit does.

    Args:
        n: number of rows.
        fraction: expected share of validation rows, in ``[0, 1)``.
        seed: key of the hash, a non-negative integer below ``2**64``.

    Raises:
        ValueError: if ``fraction`` is outside ``[0, 1)``.
    """

    def __init__(self, n: int, fraction: float, seed: int):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(
                f"validation_fraction={fraction!r} is invalid for streamed data: "
                "use a share in [0, 1)"
            )
        self.n = int(n)
        self.fraction = float(fraction) if n >= 20 else 0.0
        self.seed = int(seed) % (1 << 64)

    def is_validation(self, rows: np.ndarray) -> np.ndarray:
        """Return a boolean array: which of ``rows`` are held out.

        Args:
            rows: integer row indices in ``0 .. n-1``, an array of any shape.

        Returns:
            bool array of the shape of ``rows``, True for validation rows.
        """
        if self.fraction == 0.0:
            return np.zeros(np.shape(rows), bool)
        words = _mix(np.asarray(rows), self.seed) >> np.uint64(11)
        return words.astype(np.float64) * 2.0**-53 < self.fraction

    def count_validation(self, block: int = 1 << 22) -> int:
        """Return the number of validation rows, counted block by block.

        Args:
            block: rows hashed at a time, which bounds the memory used.

        Returns:
            The number of rows in ``0 .. n-1`` for which :meth:`is_validation`
            returns True.
        """
        return sum(
            int(
                np.count_nonzero(
                    self.is_validation(np.arange(i, min(i + block, self.n)))
                )
            )
            for i in range(0, self.n, block)
        )

    def sample_training(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` training rows uniformly, with replacement.

        Rows are drawn from all ``n`` and validation rows are rejected, so the
        draws depend only on ``rng`` and the split.

        Args:
            rng: the NumPy generator that draws the rows, whose state advances.
            size: number of rows to draw, at least 1.

        Returns:
            int64 array ``(size,)`` of training row indices in ``0 .. n-1``.

        Raises:
            ValueError: if 1000 rounds of draws do not find ``size`` training
                rows, as happens when every row is held out.
        """
        accepted = []
        missing = size
        keep_share = 1.0 - self.fraction
        for _ in range(1000):
            if missing <= 0:
                break
            draws = rng.integers(0, self.n, int(missing / keep_share * 1.1) + 16)
            draws = draws[~self.is_validation(draws)][:missing]
            accepted.append(draws)
            missing -= draws.size
        if missing > 0:
            raise ValueError(
                f"no training rows found among {self.n} rows with "
                f"validation_fraction={self.fraction}; lower the fraction"
            )
        return np.concatenate(accepted)

    def validation_batches(
        self, spins: StreamedSpins, batch_size: int, block_rows: int | None = None
    ) -> Iterator[np.ndarray]:
        """Yield the validation configurations in file order, ``batch_size`` at a time.

        The file is read sequentially, one block at a time.

        Args:
            spins: the data set of the ``n`` rows of this split.
            batch_size: configurations per batch.
            block_rows: rows read from the file at a time. None reads as
                many rows as fit in ``SCAN_BLOCK_BYTES``, but at least
                ``batch_size``.

        Yields:
            int8 arrays ``(batch_size, L, L)`` of decoded configurations
            (-1/+1 spins, or the states ``0 .. q-1``). The last batch may be
            smaller, and a split without validation rows yields none.
        """
        if block_rows is None:
            block_rows = max(batch_size, SCAN_BLOCK_BYTES // max(1, spins.row_bytes))
        pending: list[np.ndarray] = []
        n_pending = 0
        for start in range(0, self.n, block_rows):
            stop = min(start + block_rows, self.n)
            mask = self.is_validation(np.arange(start, stop))
            if not mask.any():
                continue
            pending.append(spins.read_range(start, stop)[mask])
            n_pending += pending[-1].shape[0]
            while n_pending >= batch_size:
                joined = np.concatenate(pending)
                yield joined[:batch_size]
                pending, n_pending = [joined[batch_size:]], n_pending - batch_size
        if n_pending:
            yield np.concatenate(pending)


class ChunkBatches:
    """Training batches of every chunk, read from the file and placed on the devices.

    Calling it with a chunk index returns an int8 array ``(chunk_size,
    batch_size, L, L)`` whose batch axis is split over the devices of
    ``mesh``. Each process reads only the rows for its own devices.

    Args:
        spins: the data set.
        split: which rows are for training.
        key: JAX PRNG key of the stream. With the chunk index it seeds the
            NumPy generator that draws the rows.
        chunk_size: steps per chunk.
        batch_size: configurations per step, a multiple of the device count.
        mesh: the device mesh.

    Raises:
        ValueError: if ``batch_size`` is not a multiple of the device count.
    """

    def __init__(
        self,
        spins: StreamedSpins,
        split: RowSplit,
        *,
        key: jax.Array,
        chunk_size: int,
        batch_size: int,
        mesh: Mesh,
    ):
        sharding.check_divisible("batch_size", batch_size, mesh)
        self.spins = spins
        self.split = split
        self.seed = key_seed(key)
        self.shape = (chunk_size, batch_size, *spins.shape[1:])
        self.sharding = sharding.row_sharding(mesh, axis=1)
        columns = [
            index[1].indices(batch_size)[:2]
            for index in self.sharding.addressable_devices_indices_map(
                self.shape
            ).values()
        ]
        self._local = (min(c[0] for c in columns), max(c[1] for c in columns))

    def rows(self, chunk: int) -> np.ndarray:
        """Return the row indices ``(chunk_size, batch_size)`` of a chunk.

        Every call with the same ``chunk``, in every process, draws the same
        rows.

        Args:
            chunk: chunk index, at least 0.

        Returns:
            int64 array ``(chunk_size, batch_size)`` of training rows, drawn
            uniformly with replacement by :meth:`RowSplit.sample_training`.

        Raises:
            ValueError: if :meth:`RowSplit.sample_training` finds too few
                training rows.
        """
        rng = np.random.default_rng([*self.seed, int(chunk)])
        size = self.shape[0] * self.shape[1]
        return self.split.sample_training(rng, size).reshape(self.shape[:2])

    def __call__(self, chunk: int) -> jax.Array:
        """Read the batches of chunk ``chunk`` and place them on the devices.

        Args:
            chunk: chunk index, at least 0.

        Returns:
            int8 :class:`jax.Array` ``(chunk_size, batch_size, L, L)`` of the
            configurations at :meth:`rows` (-1/+1 spins, or the states
            ``0 .. q-1``), with the batch axis split over the devices of
            ``mesh``.

        Raises:
            ValueError: if :meth:`RowSplit.sample_training` finds too few
                training rows.
        """
        first, last = self._local
        local = self.spins.read(self.rows(chunk)[:, first:last])

        def device_part(index):
            start, stop, _ = index[1].indices(self.shape[1])
            return local[:, start - first : stop - first]

        return jax.make_array_from_callback(self.shape, self.sharding, device_part)
