"""Sharded fits and chains on 4 CPU devices give the one-device results.

XLA reads ``--xla_force_host_platform_device_count`` once, when JAX starts,
and pytest has started JAX already, so the comparison runs in a subprocess.
There this file, run as a script, fits and samples once on one device and
once on four, and writes both results to an NPZ file that the test compares.
The fits differ only by the order of float32 sums across devices. The chains
do not interact, so their traces agree to rounding.
"""

import os
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from dcl_prob import sharding

N_DEVICES = 4
REPOSITORY = Path(__file__).resolve().parents[1]


def run_on_devices(output: Path) -> None:
    """Fit and sample on one and on four devices; save the results to ``output``."""
    import equinox as eqx

    from dcl_prob.data import save_dataset
    from dcl_prob.fit import FitConfig, fit, make_networks, train_q
    from dcl_prob.streaming import StreamedSpins
    from dcl_prob.transfer import transfer

    assert jax.device_count() == N_DEVICES, jax.devices()
    rng = np.random.default_rng(0)
    spins = np.where(rng.random((400, 4, 4)) < 0.6, 1, -1).astype(np.int8)
    probe = spins[:64]
    path = output.with_suffix(".h5")
    save_dataset(path, spins, attrs={"model": "ising", "temperature": 3.0})
    # Compilation takes most of the time, so this runs one chunk per phase, a
    # whole fit for streamed data, and only the q phase for data in memory.
    # The in-memory energy phase splits its batches like the streamed fit's.
    config = FitConfig(
        hidden_size=8,
        q_steps=10,
        energy_steps=10,
        batch_size=16,
        n_q_samples=64,
        chunk_size=10,
        validation_fraction=0.0,
    )
    q_start, _ = make_networks(4, config, key=jax.random.key(3))
    results = {}
    for devices in (jax.devices()[:1], jax.devices()):
        tag = f"{len(devices)}"
        with sharding.use_devices(devices), StreamedSpins(path) as streamed:
            q_net, history = train_q(
                q_start, spins, config, key=jax.random.key(4), progress=False
            )
            results[f"{tag}/memory/log_q"] = np.asarray(q_net.log_prob(probe))
            results[f"{tag}/memory/losses"] = [row["loss"] for row in history]
            results[f"{tag}/memory/devices"] = [
                len(leaf.sharding.device_set)
                for leaf in jax.tree.leaves(eqx.filter(q_net, eqx.is_array))
            ]
            fitted = fit(
                streamed, 3.0, key=jax.random.key(1), config=config, progress=False
            )
            networks = eqx.filter((fitted.q_net, fitted.energy), eqx.is_array)
            results[f"{tag}/streamed/devices"] = [
                len(leaf.sharding.device_set) for leaf in jax.tree.leaves(networks)
            ]
            results[f"{tag}/streamed/energy"] = np.asarray(fitted.energy(probe))
            results[f"{tag}/streamed/log_q"] = np.asarray(fitted.q_net.log_prob(probe))
            history = fitted.history["q"] + fitted.history["energy"]
            results[f"{tag}/streamed/losses"] = [row["loss"] for row in history]
            # 5 chains at 2 temperatures: 10 chains, padded to 12 on 4 devices.
            rows = transfer(
                fitted.energy,
                [2.0, 3.0],
                4,
                key=jax.random.key(2),
                n_chains=5,
                n_sweeps=100,
                burn_in=100,
                progress=False,
            )
            for field in ("e", "abs_m", "c", "chi", "acceptance_rate"):
                results[f"{tag}/transfer/{field}"] = [row[field] for row in rows]
    np.savez(output, **{name: np.asarray(value) for name, value in results.items()})


@pytest.fixture(scope="module")
def device_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("sharding") / "results.npz"
    environment = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={N_DEVICES}",
        "JAX_PLATFORMS": "cpu",
        "CI": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])
        ),
    }
    completed = subprocess.run(
        [sys.executable, __file__, str(output)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    with np.load(output) as archive:
        return dict(archive)


@pytest.mark.parametrize(
    "source, output",
    [
        ("memory", "log_q"),
        ("memory", "losses"),
        ("streamed", "energy"),
        ("streamed", "log_q"),
        ("streamed", "losses"),
    ],
)
def test_fit_on_four_devices_matches_one(device_results, source, output):
    # Networks are compared as functions: the constant of E is a flat
    # direction of the loss, along which float noise moves the parameters.
    one = device_results[f"1/{source}/{output}"]
    four = device_results[f"{N_DEVICES}/{source}/{output}"]
    assert one.size > 0
    np.testing.assert_allclose(four, one, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("source", ["memory", "streamed"])
def test_fit_parameters_replicated_on_all_devices(device_results, source):
    assert set(device_results[f"1/{source}/devices"]) == {1}
    assert set(device_results[f"{N_DEVICES}/{source}/devices"]) == {N_DEVICES}


@pytest.mark.parametrize("field", ["e", "abs_m", "c", "chi", "acceptance_rate"])
def test_chains_on_four_devices_match_one(device_results, field):
    np.testing.assert_allclose(
        device_results[f"{N_DEVICES}/transfer/{field}"],
        device_results[f"1/transfer/{field}"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_padded_size_rounds_up_to_device_count():
    mesh = types.SimpleNamespace(size=4)  # only the device count is used
    assert sharding.padded_size(8, mesh) == 8
    assert sharding.padded_size(10, mesh) == 12
    assert sharding.padded_size(1, mesh) == 4


def test_check_divisible_names_value_and_fix():
    mesh = types.SimpleNamespace(size=4)
    sharding.check_divisible("batch_size", 256, mesh)
    with pytest.raises(ValueError, match="batch_size=250 .* 4 devices.*248 or 252"):
        sharding.check_divisible("batch_size", 250, mesh)
    with pytest.raises(ValueError, match="use 4$"):
        sharding.check_divisible("batch_size", 3, mesh)


def test_use_devices_sets_mesh_inside_block_only():
    with sharding.use_devices(jax.devices()[:1]) as mesh:
        assert sharding.current_mesh() is mesh
        assert mesh.axis_names == (sharding.AXIS,)
    assert sharding.current_mesh().size == jax.device_count()


if __name__ == "__main__":
    run_on_devices(Path(sys.argv[1]))
