"""Tests for the exact 2D Ising references in dcl_prob.exact."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from dcl_prob import exact
from dcl_prob.exact import (
    ISING_TC,
    all_configurations,
    boltzmann_probabilities,
    enumerate_ising,
    kaufman,
    kaufman_log_z,
)
from dcl_prob.hamiltonians import IsingModel

# Both sides of T_c, T_c itself and a value within 2e-4 of it.
TEMPERATURES = (0.5, 1.0, 2.0, 2.269, ISING_TC, 3.0, 5.0, 10.0)


def onsager_free_energy(T: float) -> float:
    """Infinite-lattice free energy per spin at J = 1 from Onsager's double integral.

    -F / (N T) = ln 2 + 1 / (8 pi^2) int_0^2pi int_0^2pi
    ln[cosh^2 2K - sinh 2K (cos a + cos b)] da db, folded onto [0, pi]^2.
    """
    K = 1.0 / T
    cosh_sq, sinh_2k = math.cosh(2.0 * K) ** 2, math.sinh(2.0 * K)

    def integrand(a: float, b: float) -> float:
        return math.log(cosh_sq - sinh_2k * (math.cos(a) + math.cos(b)))

    value, _ = integrate.dblquad(
        integrand, 0.0, math.pi, 0.0, math.pi, epsabs=1e-13, epsrel=1e-13
    )
    return -T * (math.log(2.0) + value / (2.0 * math.pi**2))


def mpmath_kaufman(L: int, T: float):
    """ln Z, energy and heat capacity per spin from Kaufman's formula in mpmath.

    Evaluates the four products directly at 50 digits, with no log-space
    rearrangement, and differentiates numerically with ``mpmath.diff``.
    """
    mp = pytest.importorskip("mpmath")

    def log_z(K):
        gamma0 = 2 * K + mp.log(mp.tanh(K))
        products = [mp.mpf(1)] * 4
        for r in range(L):
            for pair, k in enumerate((2 * r + 1, 2 * r)):
                if k == 0:
                    gamma = gamma0
                else:
                    c = mp.cosh(2 * K) / mp.tanh(2 * K) - mp.cos(mp.pi * k / L)
                    gamma = mp.acosh(c)
                products[2 * pair] *= 2 * mp.cosh(L * gamma / 2)
                products[2 * pair + 1] *= 2 * mp.sinh(L * gamma / 2)
        prefactor = mp.mpf(L * L) / 2 * mp.log(2 * mp.sinh(2 * K))
        return prefactor + mp.log(sum(products) / 2)

    n = L * L
    with mp.workdps(50):
        K = 1 / mp.mpf(T)
        return (
            float(log_z(K)),
            float(-mp.diff(log_z, K, 1) / n),
            float(K**2 * mp.diff(log_z, K, 2) / n),
        )


@pytest.mark.parametrize("L", [2, 3, 4])
def test_kaufman_log_z_matches_enumeration(L):
    for T in TEMPERATURES:
        expected = enumerate_ising(L, T).log_z
        assert float(kaufman_log_z(L, T)) == pytest.approx(expected, rel=1e-10), T


@pytest.mark.parametrize("L", [2, 3, 4])
def test_kaufman_derivatives_match_enumeration(L):
    for T in TEMPERATURES:
        result = kaufman(L, T)
        expected = enumerate_ising(L, T)
        assert float(result.free_energy) == pytest.approx(
            expected.free_energy, rel=1e-10
        ), T
        assert float(result.energy) == pytest.approx(expected.energy, rel=1e-8), T
        assert float(result.heat_capacity) == pytest.approx(
            expected.heat_capacity, rel=1e-8
        ), T


def test_kaufman_antiferromagnet_on_even_lattice():
    for T in (1.0, ISING_TC, 4.0):
        result = kaufman(4, T, J=-1.0)
        expected = enumerate_ising(4, T, J=-1.0)
        assert float(result.log_z) == pytest.approx(expected.log_z, rel=1e-10)
        assert float(result.energy) == pytest.approx(expected.energy, rel=1e-8)
        assert float(result.heat_capacity) == pytest.approx(
            expected.heat_capacity, rel=1e-8
        )


def test_kaufman_coupling_scales_temperature():
    result = kaufman(6, 3.0, J=1.5)
    unit = kaufman(6, 2.0)
    assert float(result.log_z) == pytest.approx(float(unit.log_z), rel=1e-13)
    assert float(result.energy) == pytest.approx(1.5 * float(unit.energy), rel=1e-13)
    assert float(result.heat_capacity) == pytest.approx(
        float(unit.heat_capacity), rel=1e-12
    )


def test_kaufman_keeps_temperature_shape():
    T = np.array([[1.0, 2.0, 3.0], [ISING_TC, 5.0, 0.7]])
    result = kaufman(8, T)
    for name, values in result._asdict().items():
        assert values.shape == T.shape, name
        assert values.dtype == np.float64, name
    for index in np.ndindex(T.shape):
        single = kaufman(8, T[index])
        assert single.energy.shape == ()
        assert single.energy == pytest.approx(result.energy[index], rel=1e-15)


def test_kaufman_matches_mpmath_at_large_lattice():
    for T in (0.5, ISING_TC, 10.0):
        log_z, energy, heat_capacity = mpmath_kaufman(256, T)
        result = kaufman(256, T)
        assert float(result.log_z) == pytest.approx(log_z, rel=1e-13), T
        assert float(result.energy) == pytest.approx(energy, rel=1e-12), T
        assert float(result.heat_capacity) == pytest.approx(heat_capacity, rel=1e-9), T


def test_kaufman_large_lattice_is_physical():
    L, n = 256, 256 * 256
    T = np.linspace(0.5, 10.0, 96)
    result = kaufman(L, T)
    for name, values in result._asdict().items():
        assert np.all(np.isfinite(values)), name
    assert np.all(result.energy >= -2.0)
    assert np.all(result.energy < 0.0)
    assert np.all(np.diff(result.energy) > 0.0)
    assert np.all(result.heat_capacity > 0.0)
    # ln Z is bounded below by N ln 2 (Jensen at beta = 0) and by the ground state.
    assert np.all(result.log_z >= n * math.log(2.0))
    assert np.all(result.log_z >= 2.0 * n / T)
    entropy = (result.energy - result.free_energy) / T
    assert np.all(entropy > 0.0)
    assert np.all(entropy <= math.log(2.0))


def test_kaufman_heat_capacity_peaks_near_tc():
    T = np.linspace(2.2, 2.35, 301)
    heat_capacity = kaufman(256, T).heat_capacity
    assert abs(T[np.argmax(heat_capacity)] - ISING_TC) < 0.01


def test_kaufman_energy_at_tc_approaches_onsager():
    energy = {L: float(kaufman(L, ISING_TC).energy) for L in (128, 256)}
    # kaufman gives -sqrt(2) - 0.622 / L at T_c for L = 64 to 1024, so the L = 256
    # energy lies 2.4e-3 below -sqrt(2).
    assert abs(energy[256] + math.sqrt(2.0)) < 3e-3
    # Extrapolating the 1/L term away leaves an O(1/L^2) remainder.
    extrapolated = 2.0 * energy[256] - energy[128]
    assert extrapolated == pytest.approx(-math.sqrt(2.0), abs=1e-6)


def test_kaufman_free_energy_matches_onsager():
    n = 256 * 256
    for T in (1.0, 2.0, 2.5, 3.0, 5.0):
        free_energy = float(kaufman(256, T).free_energy)
        # Below T_c the two ordered states add ln 2 to ln Z. All other finite-size
        # corrections are exponentially small in L away from T_c.
        if T < ISING_TC:
            free_energy += T * math.log(2.0) / n
        assert free_energy == pytest.approx(onsager_free_energy(T), abs=1e-12), T

    at_tc = float(kaufman(256, ISING_TC).free_energy)
    assert at_tc == pytest.approx(onsager_free_energy(ISING_TC), abs=1e-4)


def test_kaufman_finite_where_gamma0_vanishes(monkeypatch):
    # Rounding leaves gamma_0 near 1e-16 at T = ISING_TC. Setting it to 0 reaches
    # the case Z4 = 0, where ln |Z4| would be -inf.
    expected = kaufman(16, ISING_TC)
    original = exact._gammas

    def gammas_with_zero_gamma0(K, L):
        gamma, dgamma, d2gamma = original(K, L)
        assert np.all(np.abs(gamma[1, :, 0]) < 1e-15)
        gamma[1, :, 0] = 0.0
        return gamma, dgamma, d2gamma

    monkeypatch.setattr(exact, "_gammas", gammas_with_zero_gamma0)
    result = kaufman(16, ISING_TC)
    for name, value in result._asdict().items():
        assert value == pytest.approx(getattr(expected, name), rel=1e-12), name


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kaufman(1, 2.0), "L=1"),
        (lambda: kaufman(2.5, 2.0), "L=2.5"),
        (lambda: kaufman(4, 0.0), "T=0.0"),
        (lambda: kaufman(4, -1.0), "T=-1.0"),
        (lambda: kaufman(4, [1.0, np.nan]), "T=nan"),
        (lambda: kaufman(4, np.inf), "T=inf"),
        (lambda: kaufman(4, 1e-3), "T >= "),
        (lambda: kaufman(4, 2.0, J=0.0), "J=0.0"),
        (lambda: kaufman(3, 2.0, J=-1.0), "odd L=3"),
        (lambda: enumerate_ising(5, 2.0), "L=5"),
        (lambda: enumerate_ising(3, 0.0), "T=0.0"),
        (lambda: enumerate_ising(3, [1.0, 2.0]), "single temperature"),
        (lambda: enumerate_ising(3, 1.0, h=np.nan), "h=nan"),
        (lambda: boltzmann_probabilities(5, 2.0), "L=5"),
        (lambda: all_configurations((5, 5)), "25 sites"),
        (lambda: all_configurations((2, 0)), "positive integer sizes"),
        (lambda: all_configurations(()), "positive integer sizes"),
    ],
)
def test_invalid_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_all_configurations_order():
    configs = all_configurations((2, 3))
    assert configs.shape == (64, 2, 3)
    assert configs.dtype == np.int8
    expected = np.array(list(itertools.product((1, -1), repeat=6))).reshape(64, 2, 3)
    np.testing.assert_array_equal(configs, expected)


def test_enumerate_ising_two_by_two_by_hand():
    # On the 2 x 2 torus each neighbour pair is joined by two bonds, so
    # H = -2 J (s1 s2 + s3 s4 + s1 s3 + s2 s4) - h (s1 + s2 + s3 + s4).
    J, h, T = 1.0, 0.3, 1.7
    # (number of states, energy, |m|) for each class of states.
    classes = [
        (1, -8 * J - 4 * h, 1.0),  # all up
        (1, -8 * J + 4 * h, 1.0),  # all down
        (4, -2 * h, 0.5),  # one spin down
        (4, 2 * h, 0.5),  # one spin up
        (4, 0.0, 0.0),  # two neighbouring spins down
        (2, 8 * J, 0.0),  # two diagonal spins down
    ]
    counts = np.array([c[0] for c in classes], dtype=float)
    energies = np.array([c[1] for c in classes])
    abs_m = np.array([c[2] for c in classes])
    weights = counts * np.exp(-energies / T)
    z = weights.sum()
    p = weights / z
    mean_e = p @ energies / 4
    mean_e2 = p @ (energies / 4) ** 2

    result = enumerate_ising(2, T, J=J, h=h)
    assert counts.sum() == 16
    assert result.log_z == pytest.approx(math.log(z), rel=1e-14)
    assert result.free_energy == pytest.approx(-T * math.log(z) / 4, rel=1e-14)
    assert result.energy == pytest.approx(mean_e, rel=1e-13)
    assert result.abs_m == pytest.approx(p @ abs_m, rel=1e-13)
    assert result.m2 == pytest.approx(p @ abs_m**2, rel=1e-13)
    heat_capacity = 4 * (mean_e2 - mean_e**2) / T**2
    assert result.heat_capacity == pytest.approx(heat_capacity, rel=1e-12)
    susceptibility = 4 * (p @ abs_m**2 - (p @ abs_m) ** 2) / T
    assert result.susceptibility == pytest.approx(susceptibility, rel=1e-12)


def test_enumerate_ising_infinite_temperature_limit():
    L, n = 4, 16
    result = enumerate_ising(L, 1e9)
    # At beta = 0 every state is equally likely and sum_i s_i is 2k - N with
    # binomial(N, k) states.
    abs_m = sum(math.comb(n, k) * abs(2 * k - n) for k in range(n + 1)) / (n * 2**n)
    assert result.log_z == pytest.approx(n * math.log(2.0), rel=1e-8)
    assert result.energy == pytest.approx(0.0, abs=1e-7)
    assert result.m2 == pytest.approx(1.0 / n, rel=1e-7)
    assert result.abs_m == pytest.approx(abs_m, rel=1e-7)


def test_boltzmann_probabilities_use_ising_energies():
    J, h, T = 1.0, 0.5, 1.3
    configs, probs = boltzmann_probabilities(3, T, J=J, h=h)
    np.testing.assert_array_equal(configs, all_configurations((3, 3)))
    assert probs.shape == (512,)
    assert probs.dtype == np.float64
    assert probs.sum() == pytest.approx(1.0, rel=1e-14)
    # These couplings make every IsingModel energy exact in float32.
    energies = np.asarray(IsingModel(J=J, h=h).energy(configs), dtype=np.float64)
    log_ratio = np.log(probs) + energies / T
    np.testing.assert_allclose(log_ratio, log_ratio[0], rtol=0, atol=1e-12)


def test_boltzmann_probabilities_flip_symmetric_at_zero_field():
    configs, probs = boltzmann_probabilities(3, 2.0)
    # Reversing the order flips every spin (see all_configurations).
    np.testing.assert_array_equal(configs[::-1], -configs)
    np.testing.assert_allclose(probs[::-1], probs, rtol=1e-14, atol=0)
