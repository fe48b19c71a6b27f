"""simulate() with parallel tempering on a spin glass, the Potts pieces of
simulate, sampler choice and the stored spin-glass reference.

Each simulate call compiles its chunk function for the shapes of its stages,
which takes seconds, so the module runs one short simulation, with a pilot
that is never doubled. The Swendsen-Wang and heat-bath kernels that simulate
also runs are tested against enumeration in test_samplers_exact_models.py.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob import montecarlo
from dcl_prob.data import load_dataset, save_dataset
from dcl_prob.hamiltonians import (
    ClockModel,
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
    model_from_dict,
)
from dcl_prob.montecarlo import SimulationResult, simulate
from dcl_prob.samplers.registry import (
    SAMPLERS,
    resolve_sampler,
    temperature_ladder,
)
from dcl_prob.samplers.swendsen_wang import SwendsenWangInfo

REFERENCE = Path(__file__).parent / "data" / "spin_glass_8x8_seed0.json"
POTTS = PottsModel(q=3)
SPIN_GLASS = EdwardsAndersonModel.random(3, seed=1)
LADDER = (0.8, 1.2, 2.0)
RUN = dict(n_chains=4, burn_in=0, pilot_steps=64, thin=2, progress=False)


@pytest.fixture(scope="module")
def spin_glass_result():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(montecarlo, "PILOT_TAU_FACTOR", 1)
        return simulate(
            SPIN_GLASS, 3, 1.2, 16, key=jax.random.key(1), temperatures=LADDER, **RUN
        )


def potts_result(spins: np.ndarray) -> SimulationResult:
    """A simulation result of Potts states, built without running chains."""
    n = spins.shape[0]
    return SimulationResult(
        spins=spins,
        energy=np.zeros(n, np.float32),
        abs_m=np.zeros(n, np.float32),
        tau_int={"energy": 1.5, "abs_m": 2.5},
        thin=3,
        burn_in=10,
        pilot_steps=100,
        rhat={"energy": 1.0, "abs_m": 1.0},
        n_chains=n,
        sampler="swendsen-wang",
        temperature=1.0,
        acceptance=1.0,
        mean_cluster_size=2.0,
    )


def test_simulate_spin_glass_with_parallel_tempering(spin_glass_result):
    result = spin_glass_result
    assert result.sampler == "parallel-tempering"
    assert result.spins.shape == (16, 3, 3)
    assert result.spins.dtype == np.int8
    assert set(np.unique(result.spins)) <= {-1, 1}
    # The kept samples are those at T = 1.2, position 1 of the ladder.
    assert result.temperature == 1.2
    np.testing.assert_allclose(result.temperatures, LADDER, rtol=1e-6)
    np.testing.assert_allclose(
        result.energy, SPIN_GLASS.energy(result.spins), atol=1e-5
    )
    np.testing.assert_allclose(
        result.abs_m, SPIN_GLASS.order_parameter(result.spins), atol=1e-6
    )
    assert 0.0 < result.acceptance <= 1.0
    assert result.mean_cluster_size is None


def test_random_potts_states_are_uniform():
    def draw(key):
        return montecarlo._random_spins(key, (4000, 3), POTTS.state_values)

    states = np.asarray(jax.jit(draw)(jax.random.key(0)))
    assert states.dtype == np.int8
    counts = np.bincount(states.ravel(), minlength=3)
    # 12000 draws: each count is 4000 +- 52 (one standard deviation).
    np.testing.assert_allclose(counts, 4000, atol=300)


def test_swendsen_wang_statistic_is_mean_cluster_size():
    info = SwendsenWangInfo(jnp.int32(3), jnp.float32(3.0), jnp.int32(2))
    assert float(SAMPLERS["swendsen-wang"].statistic(info)) == 3.0


def test_spin_glass_dataset_round_trip(spin_glass_result, tmp_path):
    path = tmp_path / "glass.h5"
    attrs = spin_glass_result.dataset_attrs(SPIN_GLASS, seed=1)
    save_dataset(path, spin_glass_result.spins, attrs=attrs, bonds=SPIN_GLASS.bonds)
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, spin_glass_result.spins)
    assert dataset.attrs["sampler"] == "parallel-tempering"
    assert dataset.attrs["encoding"] == "pm1"
    np.testing.assert_allclose(dataset.attrs["temperatures"], LADDER, rtol=1e-6)
    assert model_from_dict(dataset.attrs, bonds=dataset.bonds) == SPIN_GLASS


def test_potts_dataset_attrs(tmp_path):
    states = np.random.default_rng(0).integers(0, 3, (5, 3, 3)).astype(np.int8)
    result = potts_result(states)
    attrs = result.dataset_attrs(POTTS, seed=0)
    assert attrs["encoding"] == "potts"
    assert attrs["q"] == 3
    assert attrs["model"] == "potts"
    assert "temperatures" not in attrs
    path = tmp_path / "potts.h5"
    save_dataset(path, result.spins, attrs=attrs)
    dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.spins, states)
    assert model_from_dict(dataset.attrs) == POTTS


@pytest.mark.parametrize(
    "model, sampler, expected",
    [
        (IsingModel(), None, "wolff"),
        (IsingModel(), "checkerboard", "checkerboard"),
        (PottsModel(q=3), None, "swendsen-wang"),
        (PottsModel(q=3), "checkerboard", "heat-bath"),
        (ClockModel(q=4), None, "heat-bath"),
        (IsingNNNModel(J2=0.5), "parallel-tempering", "parallel-tempering"),
        (SPIN_GLASS, None, "parallel-tempering"),
        (SPIN_GLASS, "heat-bath", "heat-bath"),
    ],
)
def test_resolve_sampler(model, sampler, expected):
    assert resolve_sampler(model, sampler) == expected


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sampler="wolff"), "sampler='wolff' is invalid for the 'potts' model"),
        (
            dict(model=ClockModel(q=4), sampler="swendsen-wang"),
            "'swendsen-wang' is invalid for the 'clock' model: use one of",
        ),
        (dict(model=object()), "use one of the models of dcl_prob.hamiltonians"),
        (
            dict(temperatures=(1.0, 2.0)),
            "a ladder is used only by sampler='parallel-tempering'",
        ),
        (
            dict(sampler="parallel-tempering", temperatures=(1.5, 2.0)),
            "do not contain the target temperature 1.0",
        ),
        (
            dict(sampler="parallel-tempering", temperatures=(2.0, 1.0)),
            "strictly increasing",
        ),
        (
            dict(sampler="parallel-tempering", temperatures=(1.0,)),
            "at least two temperatures",
        ),
        (dict(model=SPIN_GLASS, L=4), "L=4 is invalid for a spin glass"),
    ],
)
def test_simulate_rejects_mismatched_input(kwargs, match):
    arguments = dict(model=POTTS, L=3, temperature=1.0, n_samples=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(**arguments, key=jax.random.key(0), progress=False)


def test_default_ladder():
    ladder, target = temperature_ladder(0.5)
    assert target == 0
    assert ladder.dtype == np.float32
    assert ladder[0] == pytest.approx(0.5)
    assert ladder[-1] == pytest.approx(2.0)
    assert np.all(np.diff(ladder) > 0)


# The stored reference of benchmarks/spin_glass_reference.py.


def test_spin_glass_reference_file():
    reference = json.loads(REFERENCE.read_text())
    model = EdwardsAndersonModel.random(8, distribution="gaussian", seed=0)
    bonds = np.asarray(reference["bonds"], dtype=np.float32)
    np.testing.assert_array_equal(bonds, model.bonds)
    for key in ("command", "seed", "sweeps", "date", "code_version"):
        assert key in reference["provenance"], key

    rows = {row["T"]: row for row in reference["rows"]}
    assert sorted(rows) == [1.0, 2.0, 3.0, 4.0]
    for temperature, row in rows.items():
        assert row["e_err"] < 0.002 * abs(row["e"]), temperature
        assert row["rhat"] < 1.01, temperature
    # The energy per spin rises with temperature.
    energies = [rows[temperature]["e"] for temperature in sorted(rows)]
    assert np.all(np.diff(energies) > 0)
    # At T = 4 it is close to sum_bonds -J tanh(J / T) / N, the energy of
    # independent bonds, which the loops of four and more bonds correct.
    bonds = model.bonds.astype(np.float64)
    independent_bonds = np.sum(-bonds * np.tanh(bonds / 4.0)) / bonds[0].size
    assert abs(rows[4.0]["e"] - independent_bonds) < 0.01
