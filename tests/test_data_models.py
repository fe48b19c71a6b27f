"""Data sets of Potts, clock and spin-glass models: round trips and bad input."""

import h5py
import numpy as np
import pytest

from dcl_prob.data import load_dataset, save_dataset
from dcl_prob.hamiltonians import EdwardsAndersonModel, PottsModel, model_from_dict

POTTS_ATTRS = {"model": "potts", "q": 3, "J": 1.0, "temperature": 1.2}
SPIN_GLASS = EdwardsAndersonModel.random(4, seed=0)
SPIN_GLASS_ATTRS = {**SPIN_GLASS.to_dict(), "temperature": 1.5}


@pytest.fixture
def potts_states():
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(5, 4, 4)).astype(np.int8)


@pytest.fixture
def pm_spins():
    rng = np.random.default_rng(1)
    return np.where(rng.random((5, 4, 4)) < 0.5, 1, -1).astype(np.int8)


def test_potts_hdf5_round_trip(tmp_path, potts_states):
    path = tmp_path / "potts.h5"
    save_dataset(path, potts_states, attrs=POTTS_ATTRS)
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, potts_states)
    assert dataset.spins.dtype == np.int8
    assert dataset.attrs["encoding"] == "potts"
    assert dataset.attrs["q"] == 3
    assert dataset.bonds is None
    assert model_from_dict(dataset.attrs) == PottsModel(q=3)


def test_clock_states_use_potts_encoding(tmp_path):
    states = np.arange(16, dtype=np.int8).reshape(1, 4, 4) % 5
    path = tmp_path / "clock.h5"
    save_dataset(path, states, attrs={"model": "clock", "q": 5, "temperature": 1.0})
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, states)
    assert dataset.attrs["encoding"] == "potts"


def test_potts_npz_round_trip(tmp_path, potts_states):
    path = tmp_path / "potts.npz"
    np.savez(path, spins=potts_states, temperature=1.2, q=3)
    dataset = load_dataset(path, encoding="potts")
    np.testing.assert_array_equal(dataset.spins, potts_states)
    assert dataset.attrs["q"] == 3


def test_spin_glass_hdf5_round_trip(tmp_path, pm_spins):
    path = tmp_path / "glass.h5"
    save_dataset(path, pm_spins, attrs=SPIN_GLASS_ATTRS, bonds=SPIN_GLASS.bonds)
    with h5py.File(path, "r") as file:
        assert file["bonds"].dtype == np.float32
        assert file["bonds"].shape == (2, 4, 4)
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, pm_spins)
    np.testing.assert_array_equal(dataset.bonds, SPIN_GLASS.bonds)
    assert dataset.bonds.dtype == np.float32
    assert dataset.attrs["bond_seed"] == 0
    model = model_from_dict(dataset.attrs, bonds=dataset.bonds)
    assert model == SPIN_GLASS
    assert model.seed == 0
    assert model.distribution == "gaussian"


def test_spin_glass_npz_round_trip(tmp_path, pm_spins):
    path = tmp_path / "glass.npz"
    np.savez(path, spins=pm_spins, temperature=1.5, bonds=SPIN_GLASS.bonds)
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.bonds, SPIN_GLASS.bonds)
    np.testing.assert_array_equal(dataset.spins, pm_spins)


def test_save_spin_glass_refuses_overwrite(tmp_path, pm_spins):
    path = tmp_path / "glass.h5"
    save_dataset(path, pm_spins, attrs=SPIN_GLASS_ATTRS, bonds=SPIN_GLASS.bonds)
    with pytest.raises(FileExistsError, match="--force"):
        save_dataset(path, -pm_spins, attrs=SPIN_GLASS_ATTRS, bonds=SPIN_GLASS.bonds)
    np.testing.assert_array_equal(load_dataset(path).spins, pm_spins)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glass.h5"]


@pytest.mark.parametrize(
    "values, attrs, match",
    [
        (np.full((2, 4, 4), 3), POTTS_ATTRS, "values \\[3\\], which are not Potts"),
        (np.full((2, 4, 4), -1), POTTS_ATTRS, "encoding='pm1'"),
        (np.zeros((2, 4, 4)), {**POTTS_ATTRS, "q": None}, "q"),
        (np.zeros((2, 4, 4)), {**POTTS_ATTRS, "q": 1}, "\\['q'\\]=1 is invalid"),
        (np.zeros((2, 4, 4)), {**POTTS_ATTRS, "q": 2.5}, "\\['q'\\]=2.5 is invalid"),
        (
            np.zeros((2, 4, 4)),
            {**POTTS_ATTRS, "encoding": "01"},
            "encoding'\\]='01' is invalid",
        ),
        (
            np.full((2, 4, 4), 2),
            {"model": "ising", "temperature": 1.0},
            "encoding='potts'",
        ),
    ],
)
def test_save_rejects_invalid_states(tmp_path, values, attrs, match):
    attrs = {key: value for key, value in attrs.items() if value is not None}
    with pytest.raises(ValueError, match=match):
        save_dataset(tmp_path / "data.h5", values, attrs=attrs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "attrs, bonds, match",
    [
        (SPIN_GLASS_ATTRS, None, "bonds are missing"),
        (SPIN_GLASS_ATTRS, np.ones((2, 3, 3)), "expected \\(2, 4, 4\\)"),
        (SPIN_GLASS_ATTRS, np.full((2, 4, 4), np.nan), "NaN or infinite"),
        (SPIN_GLASS_ATTRS, np.full((2, 4, 4), "a"), "dtype"),
        (
            {"model": "ising", "temperature": 1.0},
            np.ones((2, 4, 4)),
            "bonds only with model='spin-glass'",
        ),
    ],
)
def test_save_rejects_invalid_bonds(tmp_path, pm_spins, attrs, bonds, match):
    with pytest.raises(ValueError, match=match):
        save_dataset(tmp_path / "data.h5", pm_spins, attrs=attrs, bonds=bonds)
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_out_of_range_potts_states(tmp_path):
    path = tmp_path / "potts.h5"
    with h5py.File(path, "w") as file:
        file["spins"] = np.full((2, 3, 3), 4, np.int8)
        file.attrs.update({"model": "potts", "q": 3, "temperature": 1.0})
    with pytest.raises(ValueError, match="values \\[4\\], which are not Potts states"):
        load_dataset(path)


def test_load_potts_needs_q(tmp_path, potts_states):
    path = tmp_path / "potts.npz"
    np.savez(path, spins=potts_states, temperature=1.0)
    with pytest.raises(ValueError, match="needs the number of states q"):
        load_dataset(path, encoding="potts")


def test_load_spin_glass_needs_bonds(tmp_path, pm_spins):
    path = tmp_path / "glass.h5"
    with h5py.File(path, "w") as file:
        file["spins"] = pm_spins
        file.attrs.update({"model": "spin-glass", "temperature": 1.0})
    with pytest.raises(ValueError, match="bonds in .* are missing"):
        load_dataset(path)


def test_load_rejects_bonds_of_wrong_size(tmp_path, pm_spins):
    path = tmp_path / "glass.npz"
    np.savez(path, spins=pm_spins, temperature=1.0, bonds=np.ones((2, 5, 5)))
    with pytest.raises(ValueError, match="expected \\(2, 4, 4\\)"):
        load_dataset(path)
