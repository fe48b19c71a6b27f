"""Potts, clock, Ising-NNN and spin-glass models: energies, site energies,
order parameters, enumeration and the exact Potts critical temperature.

Energies are compared with plain Python loops over sites and bonds, and
``site_energies`` with energy differences of single-site changes. The model
methods run under ``jax.jit`` on a few small arrays.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dcl_prob.exact import (
    ISING_TC,
    all_configurations,
    all_states,
    configuration_index,
    enumerate_ising,
    enumerate_model,
    potts_critical_temperature,
)
from dcl_prob.hamiltonians import (
    MODELS,
    ClockModel,
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
    model_from_dict,
    overlap,
)
from dcl_prob.samplers.checkerboard import site_colouring

SPIN_GLASS_3 = EdwardsAndersonModel.random(3, seed=0)
MODEL_CASES = {
    "ising": IsingModel(J=0.7, h=0.3),
    "ising-nnn": IsingNNNModel(J=1.0, J2=-0.3, h=0.2),
    "potts": PottsModel(q=3, J=0.8),
    "clock": ClockModel(q=5, J=1.3),
    "spin-glass": SPIN_GLASS_3,
}


def bond_energy(model, a, b, direction, i, j):
    """Energy of the bond from site (i, j) to its neighbour at ``direction``."""
    diagonal = direction[0] != 0 and direction[1] != 0
    if isinstance(model, PottsModel):
        return -model.J * float(a == b)
    if isinstance(model, ClockModel):
        return -model.J * math.cos(2 * math.pi * (a - b) / model.q)
    if isinstance(model, EdwardsAndersonModel):
        return -float(model.bonds[0 if direction == (0, 1) else 1, i, j]) * a * b
    if isinstance(model, IsingNNNModel) and diagonal:
        return -model.J2 * a * b
    return -model.J * a * b


def loop_energy(model, s: np.ndarray) -> float:
    """Energy of one configuration by a loop over sites and bond directions."""
    L = s.shape[0]
    directions = [(0, 1), (1, 0)]
    if isinstance(model, IsingNNNModel):
        directions += [(1, 1), (1, -1)]
    energy = 0.0
    for i in range(L):
        for j in range(L):
            for di, dj in directions:
                neighbour = s[(i + di) % L, (j + dj) % L]
                energy += bond_energy(
                    model, int(s[i, j]), int(neighbour), (di, dj), i, j
                )
            energy -= getattr(model, "h", 0.0) * int(s[i, j])
    return energy


def call(method, *args) -> np.ndarray:
    """Evaluate a model method under ``jax.jit``: one compilation is faster
    than the many small ones of an eager evaluation."""
    return np.asarray(jax.jit(method)(*args))


def random_configs(model, n, L, seed=0):
    rng = np.random.default_rng(seed)
    values = model.state_values
    return values[rng.integers(0, values.size, size=(n, L, L))]


def lattice_size(model, default):
    return getattr(model, "L", default)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_energy_matches_loops(name):
    model = MODEL_CASES[name]
    for L in (2, 3):
        if isinstance(model, EdwardsAndersonModel) and L != model.L:
            continue
        configs = random_configs(model, 4, L, seed=L)
        energies = call(model.energy, jnp.asarray(configs))
        assert energies.shape == (4,)
        expected = [loop_energy(model, s) for s in configs]
        np.testing.assert_allclose(energies, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_CASES)
def test_site_energies_match_energy_differences(name):
    model = MODEL_CASES[name]
    L = lattice_size(model, 3)
    configs = random_configs(model, 4, L, seed=1)
    site_energies = call(model.site_energies, jnp.asarray(configs))
    assert site_energies.shape == (4, L, L, model.n_states)

    # Each configuration with site (i, j) set to every state, in one batch.
    sites = [(0, 0), (1, L - 1), (L - 1, 2)]
    changed = np.repeat(configs[:, None, None], len(sites), axis=1)
    changed = np.repeat(changed, model.n_states, axis=2)
    for k, (i, j) in enumerate(sites):
        changed[:, k, :, i, j] = model.state_values
    energies = call(model.energy, jnp.asarray(changed)).astype(np.float64)
    for k, (i, j) in enumerate(sites):
        terms = site_energies[:, i, j].astype(np.float64)
        np.testing.assert_allclose(
            energies[:, k] - energies[:, k, :1], terms - terms[:, :1], atol=2e-5
        )


def test_site_energies_of_ising_match_flip_energy_change():
    model = MODEL_CASES["ising"]
    configs = jnp.asarray(random_configs(model, 4, 3))
    site_energies = call(model.site_energies, configs)
    current = np.where(np.asarray(configs) > 0, 1, 0)
    other = 1 - current
    change = np.take_along_axis(site_energies, other[..., None], -1)[..., 0]
    change -= np.take_along_axis(site_energies, current[..., None], -1)[..., 0]
    np.testing.assert_allclose(
        change, call(model.flip_energy_change, configs), atol=1e-5
    )


def test_ising_nnn_with_zero_j2_is_ising():
    configs = jnp.asarray(random_configs(IsingModel(), 4, 3))
    np.testing.assert_allclose(
        call(IsingNNNModel(J=0.9, h=0.1).energy, configs),
        call(IsingModel(J=0.9, h=0.1).energy, configs),
        rtol=1e-6,
    )


def test_ising_energy_of_l2_counts_bonds_twice():
    # On the 2 x 2 torus every neighbour pair is joined by two bonds.
    s = jnp.ones((2, 2), jnp.int8)
    assert call(IsingModel().energy, s) == -8.0
    assert call(PottsModel(3).energy, jnp.zeros((2, 2), jnp.int8)) == -8.0
    assert call(IsingNNNModel(J=0.0, J2=1.0).energy, s) == -8.0


def test_potts_order_parameter():
    model = PottsModel(q=3)
    ordered = jnp.full((4, 4), 2, jnp.int8)
    # State 0 on 8 of the 16 sites, states 1 and 2 on 4 each: max fraction 1/2.
    mixed = jnp.asarray(np.repeat([0, 1, 2, 0], 4).reshape(4, 4), jnp.int8)
    values = call(model.order_parameter, jnp.stack([ordered, mixed]))
    np.testing.assert_allclose(values, [1.0, (3 * 0.5 - 1) / 2], rtol=1e-6)
    assert values.dtype == np.float32


def test_clock_order_parameter():
    model = ClockModel(q=4)
    # States 0 and 2 point in opposite directions and cancel.
    cancel = jnp.asarray(np.tile([0, 2], 8).reshape(4, 4), jnp.int8)
    s = random_configs(model, 3, 4)
    angle = 2 * np.pi * s / 4
    expected = np.abs(np.exp(1j * angle).mean(axis=(1, 2)))
    np.testing.assert_allclose(
        call(model.order_parameter, jnp.asarray(s)), expected, atol=1e-6
    )
    assert call(model.order_parameter, cancel) < 1e-6


def test_overlap_of_replicas():
    s = jnp.asarray(random_configs(SPIN_GLASS_3, 2, 3))
    assert call(overlap, s[0], s[0]) == 1.0
    assert call(overlap, s[0], -s[0]) == -1.0
    expected = np.mean(np.asarray(s[0]) * np.asarray(s[1]))
    np.testing.assert_allclose(call(overlap, s[0], s[1]), expected, rtol=1e-6)


def test_spin_glass_random_is_reproducible():
    first = EdwardsAndersonModel.random(5, seed=3)
    again = EdwardsAndersonModel.random(5, seed=3)
    other = EdwardsAndersonModel.random(5, seed=4)
    assert first.bonds.dtype == np.float32
    assert first.bonds.shape == (2, 5, 5)
    np.testing.assert_array_equal(first.bonds, again.bonds)
    assert first == again
    assert hash(first) == hash(again)
    assert first != other
    expected = np.random.default_rng(3).standard_normal((2, 5, 5))
    np.testing.assert_array_equal(first.bonds, expected.astype(np.float32))


def test_spin_glass_pm_bonds():
    model = EdwardsAndersonModel.random(6, distribution="pm", seed=0)
    assert set(np.unique(model.bonds)) == {-1.0, 1.0}
    assert model.to_dict() == {
        "model": "spin-glass",
        "L": 6,
        "bond_distribution": "pm",
        "bond_seed": 0,
    }


def test_spin_glass_works_as_static_jit_argument():
    calls = []

    def energy(s, model):
        calls.append(1)
        return model.energy(s)

    jitted = jax.jit(energy, static_argnames="model")
    s = jnp.ones((3, 3), jnp.int8)
    first = jitted(s, model=SPIN_GLASS_3)
    second = jitted(s, model=EdwardsAndersonModel(np.array(SPIN_GLASS_3.bonds)))
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)


def test_spin_glass_bonds_are_read_only():
    with pytest.raises(ValueError, match="read-only"):
        SPIN_GLASS_3.bonds[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: PottsModel(q=1), "q=1 is invalid"),
        (lambda: ClockModel(q=2.5), "q=2.5 is invalid"),
        (lambda: PottsModel(q=200), "q=200 is invalid"),
        (lambda: IsingNNNModel(J2=float("nan")), "J2=nan is invalid"),
        (lambda: EdwardsAndersonModel(np.ones((3, 3))), "shape \\(3, 3\\)"),
        (lambda: EdwardsAndersonModel(np.ones((2, 3, 4))), "shape \\(2, 3, 4\\)"),
        (
            lambda: EdwardsAndersonModel(np.full((2, 3, 3), np.inf)),
            "NaN or infinite",
        ),
        (
            lambda: EdwardsAndersonModel.random(4, distribution="uniform", seed=0),
            "distribution='uniform' is invalid",
        ),
        (
            lambda: EdwardsAndersonModel.random(4, seed=1.5),
            "seed=1.5 is invalid",
        ),
    ],
)
def test_models_reject_invalid_parameters(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_spin_glass_rejects_other_lattice_size():
    with pytest.raises(ValueError, match="L=3"):
        SPIN_GLASS_3.energy(jnp.ones((4, 4), jnp.int8))


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_from_dict_round_trip(name):
    model = MODEL_CASES[name]
    attrs = {**model.to_dict(), "temperature": 2.0}
    bonds = getattr(model, "bonds", None)
    assert model_from_dict(attrs, bonds=bonds) == model
    assert MODELS[model.name] is type(model)


def test_model_from_dict_rejects_bad_input():
    with pytest.raises(ValueError, match="model='xy' is invalid"):
        model_from_dict({"model": "xy"})
    with pytest.raises(ValueError, match="missing \\['q'\\]"):
        model_from_dict({"model": "potts", "J": 1.0})
    with pytest.raises(ValueError, match="needs its bonds"):
        model_from_dict({"model": "spin-glass"})
    with pytest.raises(ValueError, match="bonds only for model='spin-glass'"):
        model_from_dict({"model": "ising"}, bonds=SPIN_GLASS_3.bonds)


@pytest.mark.parametrize("L", [2, 3, 4, 5, 6, 7])
def test_site_colouring_with_diagonal_bonds_is_proper(L):
    offsets = IsingNNNModel.interaction_offsets
    colours = site_colouring(L, offsets)
    for offset in offsets:
        assert not np.any(colours == np.roll(colours, offset, axis=(0, 1)))
    assert int(colours.max()) + 1 == (4 if L % 2 == 0 else 9)


def test_site_colouring_rejects_long_bonds():
    with pytest.raises(ValueError, match="\\[\\(0, 2\\)\\] are invalid"):
        site_colouring(4, ((0, 1), (0, 2)))


# Enumeration.


def test_all_states_order_and_index():
    configs = all_states(2, np.arange(3, dtype=np.int8))
    assert configs.shape == (81, 2, 2)
    assert configs.dtype == np.int8
    np.testing.assert_array_equal(configs[0], np.zeros((2, 2)))
    np.testing.assert_array_equal(configs[1].ravel(), [0, 0, 0, 1])
    np.testing.assert_array_equal(configs[3].ravel(), [0, 0, 1, 0])
    np.testing.assert_array_equal(configuration_index(configs, [0, 1, 2]), range(81))
    assert len({configs[k].tobytes() for k in range(81)}) == 81


def test_configuration_index_rejects_foreign_values():
    with pytest.raises(ValueError, match="outside state_values"):
        configuration_index(np.full((2, 2), 3), [0, 1, 2])


def test_all_states_rejects_large_lattices():
    with pytest.raises(ValueError, match="more than the 262144"):
        all_states(3, np.arange(5))
    with pytest.raises(ValueError, match="more than the 262144"):
        all_states(5, [-1, 1])


def test_enumerate_model_of_ising_matches_enumerate_ising():
    for T in (1.5, 3.0):
        general = enumerate_model(IsingModel(J=1.0, h=0.2), 4, T)
        ising = enumerate_ising(4, T, J=1.0, h=0.2)
        assert general.log_z == pytest.approx(ising.log_z, rel=1e-12)
        assert general.energy == pytest.approx(ising.energy, rel=1e-12)
        assert general.heat_capacity == pytest.approx(ising.heat_capacity, rel=1e-9)
        assert general.order_parameter == pytest.approx(ising.abs_m, rel=1e-6)


def test_enumerate_model_sums_to_one_and_uses_float64():
    result = enumerate_model(SPIN_GLASS_3, 3, 1.0)
    assert result.energies.dtype == np.float64
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    # The float64 energy of one configuration, summed by hand from the bonds.
    s = result.configs[123].astype(np.float64)
    bonds = SPIN_GLASS_3.bonds.astype(np.float64)
    expected = -np.sum(
        bonds[0] * s * np.roll(s, -1, 1) + bonds[1] * s * np.roll(s, -1, 0)
    )
    assert result.energies[123] == pytest.approx(expected, rel=1e-14)


def test_enumerate_model_rejects_bad_input():
    with pytest.raises(ValueError, match="T=0.0 is invalid"):
        enumerate_model(PottsModel(3), 2, 0.0)
    with pytest.raises(ValueError, match="pass L=3"):
        enumerate_model(SPIN_GLASS_3, 2, 1.0)


# The q = 2 Potts model is the Ising model at coupling J / 2.


def test_potts_q2_is_ising_at_half_coupling():
    # delta(s, s') = (1 + s s') / 2, so H_potts = -J N_bonds / 2 + H_ising(J / 2)
    # with N_bonds = 2 N, and ln Z_potts = ln Z_ising(J / 2) + J N / T.
    J, L = 1.4, 3
    n_sites = L * L
    for T in (0.8, 2.0):
        potts = enumerate_model(PottsModel(q=2, J=J), L, T)
        ising = enumerate_ising(L, T, J=J / 2)
        assert potts.log_z == pytest.approx(ising.log_z + J * n_sites / T, rel=1e-12)
        assert potts.energy == pytest.approx(ising.energy - J, rel=1e-12)
        assert potts.order_parameter == pytest.approx(ising.abs_m, rel=1e-6)
    # The same probabilities per configuration, with spin -1 as state 0 and
    # spin +1 as state 1.
    potts = enumerate_model(PottsModel(q=2, J=J), L, 2.0)
    configs = all_configurations((L, L))
    ising_states = ((configs + 1) // 2).astype(np.int8)
    index = configuration_index(ising_states, [0, 1])
    ising_weights = np.exp(-call(IsingModel(J / 2).energy, configs) / 2.0)
    np.testing.assert_allclose(
        potts.probabilities[index], ising_weights / ising_weights.sum(), rtol=1e-5
    )


@pytest.mark.parametrize(
    "q, expected",
    [
        (2, ISING_TC / 2),
        # Known values of 1 / ln(1 + sqrt(q)), from 30-digit mpmath.
        (3, 0.994972861071817),
        (4, 0.910239226626837),
        (10, 0.701231567930217),
    ],
)
def test_potts_critical_temperature(q, expected):
    assert potts_critical_temperature(q) == pytest.approx(expected, rel=1e-9)
    assert potts_critical_temperature(q, J=2.5) == pytest.approx(2.5 * expected)


@pytest.mark.parametrize("q, J", [(1, 1.0), (2.5, 1.0), (3, 0.0), (3, -1.0)])
def test_potts_critical_temperature_rejects_bad_input(q, J):
    with pytest.raises(ValueError, match="is invalid"):
        potts_critical_temperature(q, J)
