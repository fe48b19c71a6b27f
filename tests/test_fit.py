"""Fitting q and E on small data, and saving and loading the result."""

import inspect
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob.fit import FitConfig, fit
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.model_io import load_model, save_model


def test_fit_signature_has_no_hamiltonian():
    parameters = set(inspect.signature(fit).parameters)
    assert parameters == {
        "spins",
        "temperature",
        "key",
        "config",
        "progress",
        "checkpoints",
    }


def test_fitted_energy_differences_correlate(small_data, small_fit):
    # Single-flip energy changes of the fitted E against the true ones on the
    # training configurations.
    spins = jnp.asarray(small_data.spins[:500])
    learned = np.asarray(small_fit.energy.flip_energy_changes(spins)).ravel()
    true = np.asarray(IsingModel().flip_energy_change(spins)).ravel()
    assert np.corrcoef(learned, true)[0, 1] > 0.99


def test_fitted_total_energy_correlates(small_data, small_fit):
    spins = jnp.asarray(small_data.spins[:500])
    learned = np.asarray(small_fit.energy(spins))
    true = np.asarray(IsingModel().energy(spins))
    assert np.corrcoef(learned, true)[0, 1] > 0.99


def test_fitted_q_is_normalized(small_fit):
    dist = small_fit.distribution()
    configs = dist.enumerate_support()
    total = float(jnp.exp(jax.scipy.special.logsumexp(dist.log_prob(configs))))
    assert abs(total - 1.0) < 1e-4


def test_fit_history_and_metrics(small_fit):
    assert set(small_fit.history) == {"q", "energy"}
    assert small_fit.history["q"][-1]["loss"] < small_fit.history["q"][0]["loss"]
    # ln 2 per spin is the entropy of independent spins; the fit must beat it.
    assert small_fit.metrics["valid_nll_per_spin"] < np.log(2)


def test_save_load_round_trip(tmp_path, small_fit):
    path = save_model(tmp_path / "model", small_fit, data_attrs={"model": "ising"})
    loaded = load_model(path)
    spins = jnp.ones((2, 4, 4), jnp.int8)
    np.testing.assert_array_equal(loaded.energy(spins), small_fit.energy(spins))
    np.testing.assert_array_equal(
        loaded.q_net.log_prob(spins), small_fit.q_net.log_prob(spins)
    )
    assert loaded.temperature == small_fit.temperature
    assert loaded.data_attrs == {"model": "ising"}


def test_save_refuses_overwrite(tmp_path, small_fit):
    save_model(tmp_path / "model", small_fit)
    with pytest.raises(FileExistsError, match="--force"):
        save_model(tmp_path / "model", small_fit)
    save_model(tmp_path / "model", small_fit, overwrite=True)


def test_load_rejects_mismatched_config(tmp_path, small_fit):
    path = save_model(tmp_path / "model", small_fit)
    config = json.loads((path / "config.json").read_text())
    config["fit_config"]["hidden_size"] = 7
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_model(path)


def test_load_rejects_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="dcl fit"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "spins, temperature, message",
    [
        (np.ones((10, 4, 5), np.int8), 3.0, "\\(n, L, L\\)"),
        (np.ones((10, 4, 4), np.int8), 0.0, "temperature"),
        (np.ones((10, 5, 5), np.int8), 3.0, "multiple of 2"),
        (np.zeros((10, 4, 4), np.int8), 3.0, "2 \\* spins - 1"),
        (np.full((10, 4, 4), 2, np.int8), 3.0, "not Ising spins"),
    ],
)
def test_fit_rejects_bad_input(spins, temperature, message):
    with pytest.raises(ValueError, match=message):
        fit(
            spins,
            temperature,
            key=jax.random.key(0),
            config=FitConfig(),
            progress=False,
        )


def test_unknown_fit_option_is_named():
    with pytest.raises(ValueError, match="hiden_size"):
        FitConfig.from_dict({"hiden_size": 3})


def test_energy_offset_not_trained(small_fit):
    # The offset is set after training from the exact tile mean, never learned.
    assert eqx.is_array(small_fit.energy.offset)
    assert small_fit.energy.offset.shape == ()


def test_joint_fit_writes_checkpoints(tmp_path, small_data):
    from dcl_prob.model_io import Checkpointer

    config = FitConfig(
        hidden_size=8,
        q_steps=50,
        energy_steps=50,
        joint=True,
        joint_steps=50,
        batch_size=64,
        n_q_samples=256,
    )
    checkpoints = Checkpointer(tmp_path / "ckpt", every=50, fingerprint={"a": 1})
    result = fit(
        small_data.spins[:1000],
        3.0,
        key=jax.random.key(2),
        config=config,
        progress=False,
        checkpoints=checkpoints,
    )
    assert set(result.history) == {"q", "energy", "joint"}
    joint = result.history["joint"][-1]
    assert all(np.isfinite(joint[name]) for name in ("nll", "pl", "logvar"))
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"q.eqx", "energy.eqx", "joint.eqx", "checkpoint.json"} <= names
    state = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    assert state["fingerprint"] == {"a": 1}
    for phase in ("q", "energy", "joint"):
        assert state["phases"][phase] == {"step": 50, "finished": True}
