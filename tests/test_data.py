"""HDF5/NPZ data sets: round trips, atomic writes and input errors."""

import h5py
import numpy as np
import pytest

from dcl_prob.data import Dataset, check_output_path, load_dataset, save_dataset

ATTRS = {
    "model": "ising",
    "J": 1.0,
    "h": 0.0,
    "temperature": 2.5,
    "sampler": "wolff",
    "seed": 7,
    "tau_int_energy": 1.7,
    "tau_int_abs_m": 2.2,
    "thin": 3,
}


@pytest.fixture
def spins():
    rng = np.random.default_rng(0)
    return np.where(rng.random((6, 4, 4)) < 0.5, 1, -1).astype(np.int8)


def write_hdf5(path, spins, **attrs):
    with h5py.File(path, "w") as file:
        if spins is not None:
            file.create_dataset("spins", data=spins)
        for key, value in attrs.items():
            file.attrs[key] = value


def test_hdf5_round_trip(tmp_path, spins):
    path = tmp_path / "data.h5"
    save_dataset(path, spins, attrs=ATTRS)

    dataset = load_dataset(path)
    assert isinstance(dataset, Dataset)
    np.testing.assert_array_equal(dataset.spins, spins)
    assert dataset.spins.dtype == np.int8
    assert dataset.temperature == 2.5
    for key, value in ATTRS.items():
        assert dataset.attrs[key] == value, key
    assert dataset.attrs["lattice"] == "square_periodic"
    assert dataset.attrs["L"] == 4
    assert dataset.attrs["encoding"] == "pm1"
    with h5py.File(path, "r") as file:
        assert file["spins"].dtype == np.int8
        assert file["spins"].shape == (6, 4, 4)


def test_save_refuses_overwrite(tmp_path, spins):
    path = tmp_path / "data.h5"
    save_dataset(path, spins, attrs=ATTRS)
    with pytest.raises(FileExistsError, match="--force"):
        save_dataset(path, -spins, attrs=ATTRS)
    np.testing.assert_array_equal(load_dataset(path).spins, spins)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_save_overwrites_when_asked(tmp_path, spins):
    path = tmp_path / "data.h5"
    save_dataset(path, spins, attrs=ATTRS)
    save_dataset(path, -spins, attrs=ATTRS, overwrite=True)
    np.testing.assert_array_equal(load_dataset(path).spins, -spins)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_failed_save_leaves_no_file(tmp_path, spins):
    path = tmp_path / "data.h5"
    with pytest.raises(ValueError, match="attribute sampler"):
        save_dataset(path, spins, attrs={**ATTRS, "sampler": None})
    assert list(tmp_path.iterdir()) == []


def test_check_output_path(tmp_path):
    path = tmp_path / "data.h5"
    check_output_path(path)
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="--force"):
        check_output_path(path)
    check_output_path(path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "data.h5")
    assert path.read_bytes() == b"user data"


@pytest.mark.parametrize(
    "bad_spins, match",
    [
        (np.zeros((2, 4, 4)), "not -1/\\+1"),
        (np.ones((0, 4, 4)), "empty"),
        (np.ones((4, 4)), "expected \\(n_samples, L, L\\)"),
    ],
)
def test_save_rejects_invalid_spins(tmp_path, bad_spins, match):
    with pytest.raises(ValueError, match=match):
        save_dataset(tmp_path / "data.h5", bad_spins, attrs=ATTRS)


def test_save_requires_temperature(tmp_path, spins):
    attrs = {key: value for key, value in ATTRS.items() if key != "temperature"}
    with pytest.raises(ValueError, match="missing \\['temperature'\\]"):
        save_dataset(tmp_path / "data.h5", spins, attrs=attrs)


def test_npz_round_trip(tmp_path, spins):
    path = tmp_path / "data.npz"
    np.savez(path, spins=spins.astype(np.float32), temperature=np.float64(3.0))
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, spins)
    assert dataset.spins.dtype == np.int8
    assert dataset.temperature == 3.0


def test_npz_zero_one_encoding(tmp_path, spins):
    path = tmp_path / "data.npz"
    np.savez(path, spins=(spins + 1) // 2, temperature=3.0)
    with pytest.raises(ValueError, match="--encoding 01"):
        load_dataset(path)
    np.testing.assert_array_equal(load_dataset(path, encoding="01").spins, spins)


def test_hdf5_encoding_attribute_is_used(tmp_path, spins):
    path = tmp_path / "data.h5"
    write_hdf5(path, (spins + 1) // 2, temperature=2.0, encoding="01")
    np.testing.assert_array_equal(load_dataset(path).spins, spins)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5 not found"):
        load_dataset(tmp_path / "missing.h5")


def test_load_rejects_non_hdf5_file(tmp_path):
    path = tmp_path / "data.h5"
    path.write_text("spins,temperature\n")
    with pytest.raises(ValueError, match="neither an HDF5 nor an NPZ file"):
        load_dataset(path)


def test_load_requires_spins(tmp_path):
    path = tmp_path / "data.h5"
    write_hdf5(path, None, temperature=2.0)
    with pytest.raises(ValueError, match="no dataset 'spins'"):
        load_dataset(path)
    npz = tmp_path / "data.npz"
    np.savez(npz, configurations=np.ones((2, 4, 4)), temperature=2.0)
    with pytest.raises(ValueError, match="no array 'spins'"):
        load_dataset(npz)


def test_load_requires_temperature(tmp_path, spins):
    path = tmp_path / "data.h5"
    write_hdf5(path, spins)
    with pytest.raises(ValueError, match="no temperature"):
        load_dataset(path)
    npz = tmp_path / "data.npz"
    np.savez(npz, spins=spins)
    with pytest.raises(ValueError, match="no temperature"):
        load_dataset(npz)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.nan])
def test_load_rejects_invalid_temperature(tmp_path, spins, temperature):
    path = tmp_path / "data.h5"
    write_hdf5(path, spins, temperature=temperature)
    with pytest.raises(ValueError, match="positive, finite"):
        load_dataset(path)


def test_load_rejects_temperature_array(tmp_path, spins):
    path = tmp_path / "data.npz"
    np.savez(path, spins=spins, temperature=np.array([2.0, 3.0]))
    with pytest.raises(ValueError, match="must contain one number"):
        load_dataset(path)


def test_load_rejects_object_arrays(tmp_path, spins):
    path = tmp_path / "data.npz"
    labels = np.array([{"T": 2.0}], dtype=object)
    np.savez(path, spins=spins, temperature=2.0, labels=labels)
    with pytest.raises(ValueError, match="rejected"):
        load_dataset(path)


@pytest.mark.parametrize(
    "values, match",
    [
        (np.full((2, 4, 4), np.nan), "NaN"),
        (np.full((2, 4, 4), 0.5), "non-integer"),
        (np.full((2, 4, 4), 2), "values \\[2\\]"),
        (np.ones((2, 16)), "reshape\\(-1, 4, 4\\)"),
        (np.ones((2, 4, 4, 1)), "expected \\(n_samples, L, L\\)"),
        (np.ones((2, 4, 5)), "not square"),
        (np.ones((0, 4, 4)), "empty"),
        (np.ones((2, 1, 1)), "L must be at least 2"),
    ],
)
def test_load_rejects_invalid_spins(tmp_path, values, match):
    path = tmp_path / "data.npz"
    np.savez(path, spins=values, temperature=2.0)
    with pytest.raises(ValueError, match=match):
        load_dataset(path)


def test_load_rejects_wrong_encoding_name(tmp_path, spins):
    path = tmp_path / "data.npz"
    np.savez(path, spins=spins, temperature=2.0)
    with pytest.raises(ValueError, match="encoding='binary' is invalid"):
        load_dataset(path, encoding="binary")


def test_load_suggests_pm1_for_pm1_data(tmp_path, spins):
    path = tmp_path / "data.npz"
    np.savez(path, spins=spins, temperature=2.0)
    with pytest.raises(ValueError, match="encoding='pm1'"):
        load_dataset(path, encoding="01")


def test_load_rejects_inconsistent_L(tmp_path, spins):
    path = tmp_path / "data.h5"
    write_hdf5(path, spins, temperature=2.0, L=8)
    with pytest.raises(ValueError, match="attribute L=8"):
        load_dataset(path)
