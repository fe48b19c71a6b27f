"""Property-based tests of the data loaders and the command-line arguments.

Whatever array or argument a user passes, the loaders and the parser either
accept it with the documented result or reject it with a ValueError (exit
status 2 on the command line), never with another exception.
"""

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from dcl_prob.cli import build_parser
from dcl_prob.data import load_dataset, save_dataset

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

numeric_arrays = st.one_of(
    arrays(
        np.int8,
        array_shapes(min_dims=1, max_dims=4, max_side=5),
        elements=st.integers(-2, 2),
    ),
    arrays(
        np.float32,
        array_shapes(min_dims=3, max_dims=3, max_side=4),
        elements=st.one_of(
            st.sampled_from([-1.0, 1.0, 0.0]), st.floats(allow_nan=True, width=32)
        ),
    ),
)
temperatures = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 5)
)


def expected_valid(values: np.ndarray) -> bool:
    if values.ndim != 3 or values.shape[0] == 0:
        return False
    if values.shape[1] != values.shape[2] or values.shape[1] < 2:
        return False
    if not np.all(np.isfinite(values)):
        return False
    return bool(np.isin(values, (-1, 1)).all())


@SETTINGS
@given(values=numeric_arrays, temperature=temperatures)
def test_hdf5_loader_accepts_or_rejects_cleanly(tmp_path, values, temperature):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        file["spins"] = values
        file.attrs["temperature"] = temperature
    valid_temperature = np.isfinite(float(temperature)) and float(temperature) > 0
    if expected_valid(values) and valid_temperature:
        dataset = load_dataset(path)
        assert dataset.spins.dtype == np.int8
        np.testing.assert_array_equal(dataset.spins, values.astype(np.int8))
        assert dataset.temperature == float(temperature)
    else:
        with pytest.raises(ValueError):
            load_dataset(path)


@SETTINGS
@given(values=numeric_arrays)
def test_npz_loader_accepts_or_rejects_cleanly(tmp_path, values):
    path = tmp_path / "data.npz"
    np.savez(path, spins=values, temperature=2.0)
    if expected_valid(values):
        np.testing.assert_array_equal(load_dataset(path).spins, values)
    else:
        with pytest.raises(ValueError):
            load_dataset(path)


@SETTINGS
@given(
    n=st.integers(1, 6),
    L=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    temperature=st.floats(0.1, 10.0),
)
def test_save_load_round_trip(tmp_path, n, L, seed, temperature):
    rng = np.random.default_rng(seed)
    spins = np.where(rng.random((n, L, L)) < 0.5, 1, -1).astype(np.int8)
    with tempfile.TemporaryDirectory(dir=tmp_path) as directory:
        path = Path(directory) / "round_trip.h5"
        save_dataset(path, spins, attrs={"model": "ising", "temperature": temperature})
        loaded = load_dataset(path)
    np.testing.assert_array_equal(loaded.spins, spins)
    assert loaded.temperature == temperature
    assert loaded.attrs["L"] == L


@SETTINGS
@given(
    zero_one=arrays(
        np.int8,
        st.tuples(st.integers(1, 4), st.just(3), st.just(3)),
        elements=st.integers(0, 1),
    )
)
def test_zero_one_encoding_maps_to_spins(tmp_path, zero_one):
    path = tmp_path / "zero_one.npz"
    np.savez(path, spins=zero_one, temperature=1.5)
    np.testing.assert_array_equal(
        load_dataset(path, encoding="01").spins, 2 * zero_one.astype(np.int8) - 1
    )


@SETTINGS
@given(text=st.text(min_size=1, max_size=12))
def test_temperature_argument_parses_or_exits_2(text):
    parser = build_parser()
    try:
        value = float(text)
    except ValueError:
        value = None
    argv = ["transfer", "model", "--T", text]
    if value is not None and np.isfinite(value) and value > 0:
        assert parser.parse_args(argv).T == [value]
    else:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2


@SETTINGS
@given(size=st.integers(-5, 300))
def test_lattice_size_argument(size):
    parser = build_parser()
    argv = ["simulate", "--L", str(size), "-o", "x.h5"]
    if size >= 2:
        assert parser.parse_args(argv).L == size
    else:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2
