"""HDF5 data read on demand: values, split, batches, resuming and ``dcl fit``."""

import hashlib

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob import streaming
from dcl_prob.cli import main
from dcl_prob.data import load_dataset, save_dataset
from dcl_prob.sharding import current_mesh
from dcl_prob.streaming import ChunkBatches, RowSplit, StreamedSpins
from dcl_prob.training import train


def random_spins(n, L=4, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, L, L)) < 0.5, 1, -1).astype(np.int8)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("streaming") / "data.h5"
    save_dataset(
        path, random_spins(300), attrs={"model": "ising", "temperature": 2.5, "J": 1.0}
    )
    return path


def test_streamed_spins_match_load_dataset(data_file):
    loaded = load_dataset(data_file)
    with StreamedSpins(data_file) as streamed:
        assert streamed.shape == loaded.spins.shape
        assert len(streamed) == 300
        assert streamed.temperature == loaded.temperature
        assert streamed.attrs == loaded.attrs
        assert streamed.values.tolist() == [-1, 1]
        digest = hashlib.sha256(loaded.spins.tobytes()).hexdigest()
        assert streamed.sha256 == digest


def test_read_returns_rows_in_requested_shape(data_file):
    spins = load_dataset(data_file).spins
    rows = np.array([[5, 3, 5], [299, 0, 3]])
    with StreamedSpins(data_file) as streamed:
        read = streamed.read(rows)
        with pytest.raises(IndexError, match="outside 0..299"):
            streamed.read([300])
    assert read.shape == (2, 3, 4, 4)
    assert read.dtype == np.int8
    np.testing.assert_array_equal(read, spins[rows])


def test_scan_in_many_blocks_gives_same_digest(data_file, monkeypatch):
    with StreamedSpins(data_file) as whole:
        digest = whole.sha256
    monkeypatch.setattr(streaming, "SCAN_BLOCK_BYTES", 7 * 16)  # 7 rows
    with StreamedSpins(data_file) as blocks:
        assert blocks.sha256 == digest


def test_zero_one_encoding_is_decoded(tmp_path):
    path = tmp_path / "zero_one.h5"
    with h5py.File(path, "w") as file:
        file["spins"] = (random_spins(30) > 0).astype(np.uint8)
        file.attrs["temperature"] = 2.0
        file.attrs["encoding"] = "01"
    loaded = load_dataset(path)
    with StreamedSpins(path) as streamed:
        assert streamed.values.tolist() == [-1, 1]
        assert streamed.sha256 == hashlib.sha256(loaded.spins.tobytes()).hexdigest()
        np.testing.assert_array_equal(streamed.read(np.arange(30)), loaded.spins)


def test_potts_states_are_kept(tmp_path):
    path = tmp_path / "potts.h5"
    states = np.random.default_rng(1).integers(0, 3, (40, 4, 4)).astype(np.int8)
    save_dataset(path, states, attrs={"model": "potts", "temperature": 1.0, "q": 3})
    with StreamedSpins(path) as streamed:
        assert streamed.q == 3
        assert streamed.values.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(streamed.read([7, 2]), states[[7, 2]])


def test_invalid_spin_values_are_named(tmp_path):
    path = tmp_path / "bad.h5"
    spins = random_spins(30)
    spins[4, 1, 1] = 3
    with h5py.File(path, "w") as file:
        file["spins"] = spins
        file.attrs["temperature"] = 2.0
    with pytest.raises(ValueError, match=r"values \[-1, 1, 3\]"):
        StreamedSpins(path)


def test_npz_file_is_rejected(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, spins=random_spins(30), temperature=2.0)
    with pytest.raises(ValueError, match="only HDF5 data sets can be streamed"):
        StreamedSpins(path)


def test_missing_temperature_is_named(tmp_path):
    path = tmp_path / "no_temperature.h5"
    with h5py.File(path, "w") as file:
        file["spins"] = random_spins(30)
    with pytest.raises(ValueError, match="no temperature"):
        StreamedSpins(path)


def test_row_split_holds_out_fraction():
    # The count is binomial(20000, 0.1) with a standard deviation of 42. The
    # bound is 5 standard deviations, so a correct split fails with
    # probability ~6e-7.
    split = RowSplit(20000, 0.1, seed=7)
    held_out = split.is_validation(np.arange(20000))
    assert abs(held_out.sum() - 2000) < 5 * 42
    assert split.count_validation(block=999) == held_out.sum()
    np.testing.assert_array_equal(
        RowSplit(20000, 0.1, seed=7).is_validation(np.arange(20000)), held_out
    )
    other = RowSplit(20000, 0.1, seed=8).is_validation(np.arange(20000))
    assert not np.array_equal(other, held_out)


def test_row_split_draws_only_training_rows():
    split = RowSplit(500, 0.3, seed=1)
    rows = split.sample_training(np.random.default_rng(0), 4000)
    assert rows.shape == (4000,)
    assert not split.is_validation(rows).any()
    training = np.flatnonzero(~split.is_validation(np.arange(500)))
    assert set(rows.tolist()) == set(training.tolist())


def test_row_split_small_or_invalid():
    assert RowSplit(19, 0.5, seed=0).count_validation() == 0
    with pytest.raises(ValueError, match="validation_fraction=1.0"):
        RowSplit(100, 1.0, seed=0)


def test_validation_batches_are_held_out_rows(data_file):
    split = RowSplit(300, 0.2, seed=3)
    expected = np.flatnonzero(split.is_validation(np.arange(300)))
    spins = load_dataset(data_file).spins
    with StreamedSpins(data_file) as streamed:
        batches = list(split.validation_batches(streamed, 16, block_rows=50))
    assert all(batch.shape[0] == 16 for batch in batches[:-1])
    assert 0 < batches[-1].shape[0] <= 16
    np.testing.assert_array_equal(np.concatenate(batches), spins[expected])


def test_chunk_batches_depend_on_key_and_chunk_only(data_file):
    split = RowSplit(300, 0.2, seed=3)
    options = {"chunk_size": 3, "batch_size": 8, "mesh": current_mesh()}
    with StreamedSpins(data_file) as streamed:
        batches = ChunkBatches(streamed, split, key=jax.random.key(0), **options)
        later = batches(2)
        assert later.shape == (3, 8, 4, 4)
        assert later.dtype == jnp.int8
        np.testing.assert_array_equal(later, batches(2))
        again = ChunkBatches(streamed, split, key=jax.random.key(0), **options)
        np.testing.assert_array_equal(again(2), later)
        assert not np.array_equal(batches(1), later)
        other = ChunkBatches(streamed, split, key=jax.random.key(1), **options)
        assert not np.array_equal(other(2), later)
        np.testing.assert_array_equal(later, streamed.read(batches.rows(2)))
        assert not split.is_validation(batches.rows(2)).any()


class Mean(eqx.Module):
    value: jax.Array


def test_resumed_streamed_training_matches_uninterrupted(data_file):
    # The loss pulls a scalar toward the batch mean, so every batch counts.
    def loss_fn(model, data, key, batch):
        return jnp.mean((batch.astype(jnp.float32) - model.value) ** 2), {}

    split = RowSplit(300, 0.0, seed=0)
    saved = {}

    def save(step, model, opt_state, metrics, last):
        saved[step] = (model, opt_state)

    with StreamedSpins(data_file) as streamed:
        options = {
            "n_steps": 8,
            "key": jax.random.key(0),
            "learning_rate": 0.1,
            "chunk_size": 2,
            "progress": False,
            "batches": ChunkBatches(
                streamed,
                split,
                key=jax.random.key(5),
                chunk_size=2,
                batch_size=4,
                mesh=current_mesh(),
            ),
        }
        start = Mean(jnp.float32(0.5))
        whole, history = train(start, loss_fn, None, on_chunk=save, **options)
        resumed, rest = train(
            start, loss_fn, None, restore=lambda m, o: (4, *saved[4]), **options
        )
    assert float(resumed.value) == float(whole.value)
    assert [row["loss"] for row in rest] == [row["loss"] for row in history[2:]]


def test_fit_command_streams_data(tmp_path, data_file, capsys):
    output = tmp_path / "model"
    argv = [
        "--no-progress",
        "fit",
        str(data_file),
        "-o",
        str(output),
        "--stream",
        "--q-steps",
        "10",
        "--energy-steps",
        "10",
        "--hidden-size",
        "8",
        "--batch-size",
        "16",
    ]
    assert main(argv) == 0
    assert (output / "config.json").is_file()
    assert not (tmp_path / "model.checkpoint").exists()
    assert "valid_nll_per_spin" in capsys.readouterr().out
