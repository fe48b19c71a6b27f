"""The ``dcl`` command line, end to end on a 4 x 4 lattice with tiny settings."""

import json

import h5py
import pytest

from dcl_prob.cli import main


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """Run simulate, fit and transfer once; return the directory of outputs."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data.h5"
    model = root / "model"
    common = ["--no-progress"]
    assert (
        main(
            common
            + [
                "simulate",
                "--L",
                "4",
                "--T",
                "3",
                "--samples",
                "400",
                "--chains",
                "8",
                "-o",
                str(data),
            ]
        )
        == 0
    )
    assert (
        main(
            common
            + [
                "fit",
                str(data),
                "-o",
                str(model),
                "--q-steps",
                "50",
                "--energy-steps",
                "50",
                "--hidden-size",
                "8",
            ]
        )
        == 0
    )
    assert (
        main(
            common
            + [
                "transfer",
                str(model),
                "--T",
                "2.0",
                "3.0",
                "--L",
                "4",
                "8",
                "--chains",
                "2",
                "--sweeps",
                "100",
                "--burn-in",
                "0",
                "-o",
                str(root / "transfer.json"),
                "--plot",
                str(root / "transfer.png"),
            ]
        )
        == 0
    )
    return root


def test_simulate_writes_hdf5(workflow):
    with h5py.File(workflow / "data.h5", "r") as file:
        assert file["spins"].shape == (400, 4, 4)
        assert file["spins"].dtype == "int8"
        assert file.attrs["temperature"] == 3.0
        assert file.attrs["model"] == "ising"
        assert file.attrs["thin"] >= 1


def test_fit_writes_model_directory(workflow):
    names = {p.name for p in (workflow / "model").iterdir()}
    assert {"config.json", "q.eqx", "energy.eqx"} <= names
    config = json.loads((workflow / "model" / "config.json").read_text())
    assert config["temperature"] == 3.0
    assert config["L"] == 4


def test_transfer_json_schema(workflow):
    payload = json.loads((workflow / "transfer.json").read_text())
    assert payload["model"] == "ising"
    assert payload["trained_at"] == {"T": 3.0, "L": 4}
    assert len(payload["rows"]) == 4
    for row in payload["rows"]:
        for key in (
            "L",
            "T",
            "e",
            "e_err",
            "abs_m",
            "abs_m_err",
            "c",
            "c_err",
            "chi",
            "chi_err",
            "rhat_max",
            "ess_min",
        ):
            assert key in row
        assert row["reference"]["kaufman"]["source"].startswith("Kaufman")


def test_transfer_plot_is_png(workflow):
    content = (workflow / "transfer.png").read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(content) > 10_000


def test_outputs_not_overwritten_without_force(workflow, capsys):
    before = (workflow / "transfer.json").read_bytes()
    status = main(
        [
            "--no-progress",
            "transfer",
            str(workflow / "model"),
            "--T",
            "2",
            "-o",
            str(workflow / "transfer.json"),
        ]
    )
    assert status == 2
    assert "--force" in capsys.readouterr().err
    assert (workflow / "transfer.json").read_bytes() == before


def test_missing_model_directory_is_an_error(tmp_path, capsys):
    status = main(["transfer", str(tmp_path / "none"), "--T", "2"])
    assert status == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--T", "-1", "-o", "x.h5"],
        ["simulate", "--L", "1", "-o", "x.h5"],
        ["transfer", "m", "--T", "nan"],
    ],
)
def test_invalid_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_fit_removes_checkpoints_after_success(workflow):
    assert not (workflow / "model.checkpoint").exists()


def test_fit_killed_and_resumed_matches_uninterrupted(tmp_path):
    """A fit killed with SIGKILL and resumed ends with the same parameters."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "data.h5"
    assert (
        main(
            [
                "--no-progress",
                "simulate",
                "--L",
                "4",
                "--T",
                "3",
                "--samples",
                "400",
                "--chains",
                "8",
                "-o",
                str(data),
            ]
        )
        == 0
    )
    options = [
        "--q-steps",
        "300",
        "--energy-steps",
        "300",
        "--hidden-size",
        "8",
        "--checkpoint-every",
        "50",
        "--seed",
        "3",
    ]
    command = [sys.executable, "-m", "dcl_prob.cli", "--no-progress", "fit", str(data)]
    # The four runs compile the same functions: a persistent compilation cache
    # in tmp_path lets the later runs load them instead of compiling again.
    environment = {
        **os.environ,
        "CI": "1",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }
    subprocess.run(
        command + ["-o", str(tmp_path / "whole")] + options,
        check=True,
        env=environment,
        capture_output=True,
    )

    killed = tmp_path / "resumed"
    state = tmp_path / "resumed.checkpoint" / "checkpoint.json"
    process = subprocess.Popen(
        command + ["-o", str(killed)] + options,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and '"energy"' in state.read_text():
            break
        time.sleep(0.01)
    assert process.poll() is None, "the fit ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not killed.exists()

    rejected = subprocess.run(
        command + ["-o", str(killed)] + options,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert rejected.returncode == 2
    assert "--resume" in rejected.stderr
    subprocess.run(
        command + ["-o", str(killed), "--resume"] + options,
        check=True,
        env=environment,
        capture_output=True,
    )
    for name in ("q.eqx", "energy.eqx"):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert not (tmp_path / "resumed.checkpoint").exists()


def test_fit_stops_on_non_finite_loss(workflow, tmp_path, capsys):
    model = tmp_path / "model"
    status = main(
        [
            "--no-progress",
            "fit",
            str(workflow / "data.h5"),
            "-o",
            str(model),
            "--q-steps",
            "100",
            "--energy-steps",
            "100",
            "--hidden-size",
            "8",
            "--q-learning-rate",
            "1e12",
            "--checkpoint-every",
            "50",
        ]
    )
    message = capsys.readouterr().err
    assert status == 2
    assert "the loss became" in message
    assert "model.checkpoint" in message
    assert (tmp_path / "model.checkpoint" / "checkpoint.json").exists()
    assert not model.exists()


@pytest.mark.parametrize(
    "options, low, high, has_bonds, order",
    [
        (["--model", "potts", "--q", "3", "--T", "1.5"], 0, 2, False, "potts"),
        (
            ["--model", "spin-glass", "--bond-seed", "3", "--T", "2"],
            -1,
            1,
            True,
            "overlap",
        ),
    ],
)
def test_other_models_end_to_end(
    tmp_path, capsys, options, low, high, has_bonds, order
):
    data, model, out = tmp_path / "data.h5", tmp_path / "model", tmp_path / "t.json"
    argv = ["--no-progress", "simulate", "--L", "4", "--samples", "64"]
    argv += ["--chains", "8", "-o", str(data)] + options
    assert main(argv) == 0
    with h5py.File(data, "r") as file:
        spins = file["spins"][...]
        assert file.attrs["model"] == options[1]
        assert ("bonds" in file) == has_bonds
    assert spins.shape == (64, 4, 4)
    assert spins.min() >= low
    assert spins.max() <= high
    if not has_bonds:
        # test_potts_fit.py checks the Potts fit and transfer, and the options
        # that `dcl fit` derives from the data (config_for_data).
        return

    tiny = ["--q-steps", "20", "--energy-steps", "20", "--hidden-size", "8"]
    assert main(["--no-progress", "fit", str(data), "-o", str(model)] + tiny) == 0
    config = json.loads((model / "config.json").read_text())["fit_config"]
    assert config["n_states"] == 2
    assert config["energy_kind"] == "bonds"

    argv = ["--no-progress", "transfer", str(model), "--T", "1", "2", "--L", "4"]
    argv += ["--chains", "4", "--sweeps", "20", "--burn-in", "0", "-o", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["order_parameter"] for row in rows] == [order, order]
    assert "exchange_ladder_size" in rows[0]
    assert all(0.0 <= row["abs_m"] <= 1.0 for row in rows)

    # Learned bond couplings exist only at the training size.
    argv[argv.index("--L") + 1] = "8"
    assert main(argv + ["--force"]) == 2
    assert "learned bond couplings for L=4" in capsys.readouterr().err
