"""Bad input through the command line: each case fails with exit status 2, a
message that names the problem and the fix, and no output file left behind."""

import json

import h5py
import numpy as np
import pytest

from dcl_prob.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_fit):
    """Good and bad data files and model directories, made once."""
    from dcl_prob.model_io import save_model

    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    spins = np.where(rng.random((50, 4, 4)) < 0.5, 1, -1).astype(np.int8)

    def h5(name, data, **attrs):
        path = root / name
        with h5py.File(path, "w") as file:
            if data is not None:
                file["spins"] = data
            for key, value in attrs.items():
                file.attrs[key] = value
        return path

    paths = {
        "good": h5("good.h5", spins, temperature=3.0, model="ising"),
        "zero_one": h5("zero_one.h5", (spins + 1) // 2, temperature=3.0),
        "no_spins": h5("no_spins.h5", None, temperature=3.0),
        "no_temperature": h5("no_temperature.h5", spins),
        "bad_temperature": h5("bad_temperature.h5", spins, temperature=-2.0),
        "nan": h5("nan.h5", np.full((5, 4, 4), np.nan), temperature=3.0),
        "fractional": h5("fractional.h5", np.full((5, 4, 4), 0.5), temperature=3.0),
        "not_square": h5("not_square.h5", spins[:, :, :2], temperature=3.0),
        "odd_size": h5("odd.h5", np.ones((5, 5, 5), np.int8), temperature=3.0),
        "empty": h5("empty.h5", np.ones((0, 4, 4), np.int8), temperature=3.0),
        "flat": h5("flat.h5", spins.reshape(50, 16), temperature=3.0),
    }
    text = root / "notes.txt"
    text.write_text("not a data set\n")
    paths["text"] = text
    truncated = root / "truncated.h5"
    truncated.write_bytes(paths["good"].read_bytes()[:600])
    paths["truncated"] = truncated
    pickled = root / "pickled.npz"
    np.savez(pickled, spins=np.array([object()], dtype=object), temperature=3.0)
    paths["pickled"] = pickled

    model = save_model(root / "model", small_fit, data_attrs={"model": "ising"})
    paths["model"] = model
    broken = save_model(root / "broken", small_fit)
    (broken / "energy.eqx").unlink()
    paths["model_missing_file"] = broken
    mismatch = save_model(root / "mismatch", small_fit)
    config = json.loads((mismatch / "config.json").read_text())
    config["fit_config"]["hidden_size"] += 1
    (mismatch / "config.json").write_text(json.dumps(config))
    paths["model_mismatch"] = mismatch
    version = save_model(root / "version", small_fit)
    config = json.loads((version / "config.json").read_text())
    config["format_version"] = 99
    (version / "config.json").write_text(json.dumps(config))
    paths["model_version"] = version
    crafted = save_model(root / "crafted", small_fit)
    with open(crafted / "energy.eqx", "wb") as handle:
        # An object array is stored with pickle; loading it would run code.
        np.save(handle, np.array([object()], dtype=object), allow_pickle=True)
    paths["model_pickle"] = crafted
    existing = root / "existing.json"
    existing.write_text("{}")
    paths["existing"] = existing
    return root, paths


FIT = ["fit", "--q-steps", "50", "--energy-steps", "50", "--hidden-size", "8"]

# (case id, argv with {name} placeholders, words the error message contains)
CASES = [
    ("missing data", FIT + ["{root}/nowhere.h5"], ["not found"]),
    ("text file", FIT + ["{text}"], ["neither an HDF5 nor an NPZ"]),
    ("truncated hdf5", FIT + ["{truncated}"], ["truncated"]),
    ("no spins", FIT + ["{no_spins}"], ["no dataset 'spins'"]),
    ("no temperature", FIT + ["{no_temperature}"], ["no temperature"]),
    ("negative temperature", FIT + ["{bad_temperature}"], ["temperature", "positive"]),
    ("zero one spins", FIT + ["{zero_one}"], ["--encoding 01"]),
    ("nan spins", FIT + ["{nan}"], ["NaN"]),
    ("fractional spins", FIT + ["{fractional}"], ["non-integer"]),
    ("not square", FIT + ["{not_square}"], ["not", "square"]),
    ("L not multiple of focus", FIT + ["{odd_size}"], ["multiple of 2"]),
    ("empty data", FIT + ["{empty}"], ["empty"]),
    ("flattened lattice", FIT + ["{flat}"], ["reshape(-1, 4, 4)"]),
    ("pickled npz", FIT + ["{pickled}"], ["pickle"]),
    ("model exists", FIT + ["{good}", "-o", "{model}"], ["--force"]),
    ("missing model", ["transfer", "{root}/none", "--T", "2"], ["not found"]),
    (
        "model file missing",
        ["transfer", "{model_missing_file}", "--T", "2"],
        ["missing", "energy.eqx"],
    ),
    ("model mismatch", ["transfer", "{model_mismatch}", "--T", "2"], ["do not match"]),
    ("model version", ["transfer", "{model_version}", "--T", "2"], ["format_version"]),
    (
        "model with pickle",
        ["transfer", "{model_pickle}", "--T", "2"],
        ["pickled", "rejected"],
    ),
    (
        "transfer output exists",
        ["transfer", "{model}", "--T", "2", "-o", "{existing}"],
        ["--force"],
    ),
    (
        "transfer L not multiple",
        ["transfer", "{model}", "--T", "2", "--L", "7"],
        ["multiple of 2"],
    ),
    (
        "validate few chains",
        ["validate", "{model}", "--T", "2", "--chains", "2"],
        ["at least 4"],
    ),
    (
        "simulate output exists",
        ["simulate", "--L", "4", "-o", "{existing}"],
        ["--force"],
    ),
    (
        "wolff with field",
        ["simulate", "--L", "4", "--h", "0.5", "-o", "{root}/field.h5"],
        ["h=0.5"],
    ),
]

ARGPARSE_CASES = [
    ("zero temperature", ["simulate", "--T", "0", "-o", "x.h5"], "--T"),
    ("lattice size one", ["simulate", "--L", "1", "-o", "x.h5"], "--L"),
    ("no samples", ["simulate", "--samples", "0", "-o", "x.h5"], "--samples"),
    ("nan temperature", ["transfer", "m", "--T", "nan"], "--T"),
    ("unknown model", ["simulate", "--model", "xy", "-o", "x.h5"], "--model"),
]


@pytest.mark.parametrize(
    "argv, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_reported(files, tmp_path, capsys, argv, words):
    root, paths = files
    names = {"root": root, **paths}
    argv = [part.format(**names) for part in argv]
    if argv[0] == "fit" and "-o" not in argv:
        argv += ["-o", str(tmp_path / "model")]
    if argv[0] in ("transfer", "validate") and "-o" not in argv:
        argv += ["-o", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    status = main(["--no-progress"] + argv)
    message = capsys.readouterr().err
    assert status == 2, message
    assert "Traceback" not in message
    for word in words:
        assert word in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "argv, option", [c[1:] for c in ARGPARSE_CASES], ids=[c[0] for c in ARGPARSE_CASES]
)
def test_bad_arguments_exit_2(capsys, argv, option):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_case_table_is_large_enough():
    assert len(CASES) + len(ARGPARSE_CASES) >= 20


def _load_data(path):
    from dcl_prob.data import load_dataset

    return load_dataset(path)


def _load_model(path):
    from dcl_prob.model_io import load_model

    return load_model(path)


def _transfer_size(path, L):
    import jax

    from dcl_prob.model_io import load_model
    from dcl_prob.transfer import transfer

    return transfer(load_model(path).energy, [2.0], L, key=jax.random.key(0))


# (case id, function, argument name in `files` or a literal, error type, words)
LIBRARY_CASES = [
    ("missing data", _load_data, "{root}/nowhere.h5", FileNotFoundError, ["not found"]),
    ("text file", _load_data, "{text}", ValueError, ["neither an HDF5"]),
    ("truncated hdf5", _load_data, "{truncated}", ValueError, ["truncated"]),
    ("no spins", _load_data, "{no_spins}", ValueError, ["no dataset 'spins'"]),
    ("no temperature", _load_data, "{no_temperature}", ValueError, ["no temperature"]),
    ("negative temperature", _load_data, "{bad_temperature}", ValueError, ["positive"]),
    ("zero one spins", _load_data, "{zero_one}", ValueError, ["--encoding 01"]),
    ("nan spins", _load_data, "{nan}", ValueError, ["NaN"]),
    ("fractional spins", _load_data, "{fractional}", ValueError, ["non-integer"]),
    ("not square", _load_data, "{not_square}", ValueError, ["square"]),
    ("empty data", _load_data, "{empty}", ValueError, ["empty"]),
    ("flattened lattice", _load_data, "{flat}", ValueError, ["reshape(-1, 4, 4)"]),
    ("pickled npz", _load_data, "{pickled}", ValueError, ["pickle"]),
    ("missing model", _load_model, "{root}/none", FileNotFoundError, ["not found"]),
    (
        "model file missing",
        _load_model,
        "{model_missing_file}",
        FileNotFoundError,
        ["energy.eqx"],
    ),
    ("model mismatch", _load_model, "{model_mismatch}", ValueError, ["do not match"]),
    ("model version", _load_model, "{model_version}", ValueError, ["format_version"]),
    ("model with pickle", _load_model, "{model_pickle}", ValueError, ["pickled"]),
]


@pytest.mark.parametrize(
    "function, argument, error, words",
    [case[1:] for case in LIBRARY_CASES],
    ids=[case[0] for case in LIBRARY_CASES],
)
def test_library_raises_named_error(files, function, argument, error, words):
    root, paths = files
    with pytest.raises(error) as info:
        function(argument.format(root=root, **paths))
    for word in words:
        assert word in str(info.value)


def test_library_transfer_rejects_size(files):
    _, paths = files
    with pytest.raises(ValueError, match="multiple of 2"):
        _transfer_size(paths["model"], 7)
