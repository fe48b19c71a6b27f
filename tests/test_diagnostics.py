"""ArviZ-based diagnostics: ESS against an AR(1) chain, summaries and plots."""

import warnings

import numpy as np
import pytest

from dcl_prob.diagnostics import (
    chain_jackknife,
    integrated_autocorrelation_time,
    plot_diagnostics,
    summarize_traces,
    to_inference_data,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

PHI = 0.9


def ar1(n_chains, n_draws, phi, seed):
    """Stationary AR(1) chains x_t = phi x_{t-1} + noise, unit marginal variance."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n_chains, n_draws)) * np.sqrt(1 - phi**2)
    x = np.empty((n_chains, n_draws))
    x[:, 0] = rng.normal(size=n_chains)
    for t in range(1, n_draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.fixture(scope="module")
def ar1_trace():
    return ar1(8, 40_000, PHI, seed=0)


def test_ess_of_ar1_matches_theory(ar1_trace):
    # For AR(1) the integrated autocorrelation time is (1 + phi) / (1 - phi),
    # so ESS = chains * draws * (1 - phi) / (1 + phi) = 16842 here. With 8
    # chains of 40000 draws the relative standard deviation of ArviZ's
    # estimate is about 2 %, so a 10 % bound fails with probability < 1e-6.
    theory = ar1_trace.size * (1 - PHI) / (1 + PHI)
    summary = summarize_traces({"x": ar1_trace})
    assert abs(summary["x"]["ess_bulk"] / theory - 1) < 0.10
    tau = integrated_autocorrelation_time(ar1_trace)
    assert abs(tau / ((1 + PHI) / (1 - PHI)) - 1) < 0.10


def test_summary_fields_and_rhat(ar1_trace):
    summary = summarize_traces({"x": ar1_trace, "y": ar1_trace**2})
    assert set(summary) == {"x", "y"}
    for values in summary.values():
        assert set(values) == {
            "mean",
            "mcse",
            "rhat",
            "ess_bulk",
            "ess_tail",
            "tau_int",
        }
        assert 0.99 < values["rhat"] < 1.01


def test_arviz_summary_runs_on_inference_data(ar1_trace):
    idata = to_inference_data(
        {"e": ar1_trace[:, :500], "abs_m": np.abs(ar1_trace[:, :500])},
        sample_stats={"acceptance_rate": np.full((8, 500), 0.5)},
    )
    table = az.summary(idata)
    assert set(table.index) == {"e", "abs_m"}
    assert "acceptance_rate" in idata.sample_stats


def test_rhat_detects_shifted_chain():
    trace = ar1(4, 2000, 0.5, seed=1)
    trace[0] += 3.0
    assert summarize_traces({"x": trace})["x"]["rhat"] > 1.1


def test_chain_jackknife_of_mean_matches_standard_error():
    rng = np.random.default_rng(2)
    trace = rng.normal(size=(50, 200))
    estimate, error = chain_jackknife(np.mean, trace)
    chain_means = trace.mean(axis=1)
    assert estimate == pytest.approx(trace.mean())
    assert error == pytest.approx(chain_means.std(ddof=1) / np.sqrt(50), rel=1e-6)


def test_plot_diagnostics_writes_trace_and_rank(tmp_path, ar1_trace):
    idata = to_inference_data({"e": ar1_trace[:4, :500]})
    plot_diagnostics(idata, tmp_path / "trace.png")
    for name in ("trace.png", "trace_rank.png"):
        content = (tmp_path / name).read_bytes()
        assert content[:4] == b"\x89PNG"
        assert len(content) > 5_000
