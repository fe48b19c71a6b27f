"""``validate`` and ``dcl validate`` on the small fitted 4 x 4 model."""

import json

import numpy as np
import pytest

from dcl_prob.cli import main
from dcl_prob.model_io import save_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_fit):
    path = tmp_path_factory.mktemp("validate") / "model"
    attrs = {"model": "ising", "J": 1.0, "h": 0.0}
    return save_model(path, small_fit, data_attrs=attrs)


@pytest.fixture(scope="module")
def report(model_dir, tmp_path_factory):
    """One short ``dcl validate`` run, shared by the tests of its report.

    It goes through the command line, so it also tests the options that reach
    :func:`dcl_prob.validate.validate`.
    """
    out = tmp_path_factory.mktemp("validate_out") / "v"
    status = main(
        [
            "--no-progress",
            "validate",
            str(model_dir),
            "--T",
            "2.5",
            "3.0",
            "--chains",
            "4",
            "--sweeps",
            "100",
            "--burn-in",
            "50",
            "--imh-steps",
            "200",
            "--is-samples",
            "2000",
            "--smc-particles",
            "128",
            "--smc-runs",
            "4",
            "-o",
            str(out),
        ]
    )
    assert status == 0
    return json.loads((out / "validate.json").read_text()), out


def test_report_has_both_samplers(report):
    result, _ = report
    assert [row["T"] for row in result["rows"]] == [2.5, 3.0]
    for row in result["rows"]:
        assert set(row["samplers"]) == {"local_metropolis", "replica_exchange"}
        for summary in row["samplers"].values():
            assert set(summary) == {"e", "abs_m"}
            assert np.isfinite(summary["e"]["rhat"])


def test_log_z_estimates_near_exact(report):
    # The fitted 4 x 4 energy is close to the Ising energy, and both carry no
    # constant term, so ln Z per spin agrees with Kaufman to a few percent.
    result, _ = report
    for row in result["rows"]:
        exact = row["reference"]["log_z"]
        assert abs(row["log_z_smc"]["log_z"] / exact - 1) < 0.03
        assert (row["log_z_smc"]["n_particles"], row["log_z_smc"]["n_runs"]) == (128, 4)
        assert abs(row["log_z_is"]["log_z"] / exact - 1) < 0.03
        assert 0 < row["log_z_is"]["ess_fraction"] <= 1


def test_neural_imh_acceptance_reported(report):
    result, _ = report
    assert 0.0 < result["neural_imh"]["acceptance_rate"] <= 1.0
    assert result["neural_imh"]["n_steps"] == 200
    assert result["neural_imh"]["temperature"] == 3.0


def test_short_run_warns_about_ess(report):
    result, _ = report
    assert any("ESS" in problem for problem in result["warnings"])


def test_plots_written(report):
    _, out = report
    for name in ("validation.png", "trace_T2.5.png", "trace_T2.5_rank.png"):
        assert (out / name).stat().st_size > 5_000


def test_cli_validate_rejects_few_chains(model_dir, tmp_path, capsys):
    status = main(
        [
            "--no-progress",
            "validate",
            str(model_dir),
            "--T",
            "3",
            "--chains",
            "2",
            "-o",
            str(tmp_path / "v"),
        ]
    )
    assert status == 2
    assert "at least 4" in capsys.readouterr().err


def test_cli_anneal_writes_free_energies(model_dir, tmp_path):
    out = tmp_path / "anneal.json"
    status = main(
        [
            "--no-progress",
            "anneal",
            str(model_dir),
            "--T",
            "2.5",
            "--steps",
            "50",
            "--batch-size",
            "64",
            "-o",
            str(out),
        ]
    )
    assert status == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["T"] == 2.5
    # F_q is an upper bound on the free energy of the learned model, and that
    # model is close to the Ising model here. ln 2 per spin bounds the entropy.
    assert row["free_energy"] > row["reference"]["free_energy"] - 0.05
    assert 0 < row["entropy"] < np.log(2)


def test_cli_anneal_conditioned_q_at_another_size(model_dir, tmp_path):
    # The fitted q has boundary position inputs, so it moves from L = 4 to
    # L = 8 and becomes the warm start of one temperature-conditioned q.
    out = tmp_path / "anneal_range.json"
    status = main(
        [
            "--no-progress",
            "anneal",
            str(model_dir),
            "--L",
            "8",
            "--range",
            "2.0",
            "3.0",
            "--T",
            "2.0",
            "3.0",
            "--steps",
            "20",
            "--batch-size",
            "32",
            "--eval-size",
            "256",
            "-o",
            str(out),
        ]
    )
    assert status == 0
    payload = json.loads(out.read_text())
    assert payload["conditioned_range"] == [2.0, 3.0]
    assert [row["T"] for row in payload["rows"]] == [2.0, 3.0]
    for row in payload["rows"]:
        assert row["L"] == 8
        assert 0 < row["entropy"] < np.log(2)
        assert 0 < row["reweighted"]["ess_fraction"] <= 1
        assert row["free_energy"] > row["reference"]["free_energy"] - 0.05


def test_cli_anneal_rejects_temperatures_outside_range(model_dir, tmp_path, capsys):
    out = tmp_path / "a.json"
    status = main(
        ["anneal", str(model_dir), "--range", "2", "3", "--T", "4", "-o", str(out)]
    )
    assert status == 2
    assert "--range" in capsys.readouterr().err
    assert not out.exists()


def test_cli_validate_refuses_non_empty_output(model_dir, tmp_path, capsys):
    out = tmp_path / "v"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    status = main(
        ["--no-progress", "validate", str(model_dir), "--T", "3", "-o", str(out)]
    )
    assert status == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"
