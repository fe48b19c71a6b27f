"""Exact references for the 2D Ising model on the periodic L x L square lattice.

``H(s) = -J sum_<ij> s_i s_j - h sum_i s_i`` with spins ``+-1``, each
nearest-neighbour bond counted once (``2 N`` bonds on ``N = L * L`` sites, as in
:class:`dcl_prob.hamiltonians.IsingModel`) and ``k_B = 1``, so temperatures are in
units of energy.

- :func:`kaufman` evaluates the exact finite-lattice partition function of the
  torus at ``h = 0`` for any ``L`` (B. Kaufman, Phys. Rev. 76, 1232 (1949)).
- :func:`enumerate_ising` and :func:`boltzmann_probabilities` sum over all
  ``2**N`` states by brute force, for ``N <= 16``.
- :func:`enumerate_model` (from :mod:`dcl_prob.enumeration`) does the same
  for every model of :mod:`dcl_prob.hamiltonians` on tiny lattices.
- :func:`potts_critical_temperature` is the exact transition temperature of
  the q-state Potts model on the square lattice.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dcl_prob.enumeration import (
    ModelEnumeration,
    all_states,
    configuration_index,
    enumerate_model,
)
from dcl_prob.lattice import check_lattice_size

__all__ = [
    "ISING_TC",
    "EnumerationResult",
    "KaufmanResult",
    "ModelEnumeration",
    "all_configurations",
    "all_states",
    "boltzmann_probabilities",
    "configuration_index",
    "enumerate_ising",
    "enumerate_model",
    "kaufman",
    "kaufman_log_z",
    "potts_critical_temperature",
]

ISING_TC = 2.0 / math.log(1.0 + math.sqrt(2.0))
"""Critical temperature of the infinite square-lattice Ising model at ``J = 1``."""

MAX_CONFIGURATION_SITES = 24
MAX_ENUMERATION_SITES = 16
# sinh(gamma_0 / 2)^2 with gamma_0 ~ 2 |J| / T overflows float64 from |J| / T of
# about 355, so this limit leaves a margin.
MAX_KAUFMAN_COUPLING = 300.0


def potts_critical_temperature(q: int, J: float = 1.0) -> float:
    """Return the exact critical temperature ``J / ln(1 + sqrt(q))`` of the
    q-state Potts model ``H = -J sum_<ij> delta(s_i, s_j)`` on the infinite
    square lattice (``k_B = 1``).

    It is the self-dual point of the square-lattice Potts model. The
    transition is continuous for ``q <= 4`` and first order for ``q > 4``.
    For ``q = 2`` it is :data:`ISING_TC` at coupling ``J / 2``, because
    ``delta(s, s') = (1 + s s') / 2`` maps the model onto the Ising model.

    Raises:
        ValueError: if ``q`` is not an integer >= 2 or ``J`` is not finite and
            > 0.
    """
    if isinstance(q, bool) or int(q) != q or q < 2:
        raise ValueError(f"q={q!r} is invalid: pass an integer number of states >= 2")
    J = float(J)
    if not (math.isfinite(J) and J > 0):
        raise ValueError(
            f"J={J} is invalid: the Potts transition needs a ferromagnetic, "
            "finite coupling J > 0"
        )
    return J / math.log(1.0 + math.sqrt(q))


class KaufmanResult(NamedTuple):
    """Exact torus thermodynamics; float64 arrays with the shape of ``T``."""

    log_z: np.ndarray  # total ln Z
    free_energy: np.ndarray  # -T ln Z / N
    energy: np.ndarray  # <H> / N
    heat_capacity: np.ndarray  # (<H^2> - <H>^2) / (N T^2)


class EnumerationResult(NamedTuple):
    """Exact thermodynamics by summing over all states; float64 scalars."""

    log_z: float  # total ln Z
    free_energy: float  # -T ln Z / N
    energy: float  # <H> / N
    abs_m: float  # <|m|> with m = sum_i s_i / N
    m2: float  # <m^2>
    heat_capacity: float  # N (<e^2> - <e>^2) / T^2 with e = H / N
    susceptibility: float  # N (<m^2> - <|m|>^2) / T


def _check_temperature(T) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    bad = ~(np.isfinite(T) & (T > 0))
    if np.any(bad):
        raise ValueError(
            f"T={float(T[bad].ravel()[0])} is invalid: temperatures must be finite "
            "and > 0 (energy units, k_B = 1); pass positive finite values"
        )
    return T


def _check_coupling(J: float, L: int) -> float:
    """Validate ``J`` and return the ferromagnet with the same partition function."""
    J = float(J)
    if not (math.isfinite(J) and J != 0):
        raise ValueError(f"J={J} is invalid: pass a finite nonzero coupling")
    if J < 0 and L % 2:
        raise ValueError(
            f"J={J} with odd L={L} is invalid: the antiferromagnet on an odd torus "
            "is frustrated and Kaufman's formula does not cover it; use "
            "enumerate_ising for L <= 4 or an even L"
        )
    # Flipping one sublattice of an even torus maps J to -J and keeps every energy.
    return abs(J)


def _gammas(K: np.ndarray, L: int):
    """Return Kaufman's ``gamma_k`` and its first two derivatives in ``K``.

    Each array has shape ``(2, K.size, L)``: index 0 contains the odd wavenumbers
    ``k = 2r + 1`` and index 1 the even ones ``k = 2r``, ``r = 0 .. L - 1``.
    ``gamma_0`` is signed, ``2 (K - K*)`` with the dual coupling
    ``tanh K* = exp(-2 K)``, so it is negative above T_c and positive below.
    """
    K = K[:, None]
    one_minus_q2 = -np.expm1(-4.0 * K)  # 1 - q^2 with q = exp(-2K)
    inv_sinh2k = 2.0 * np.exp(-2.0 * K) / one_minus_q2
    coth2k = (1.0 + np.exp(-4.0 * K)) / one_minus_q2
    gamma0 = 2.0 * K + np.log(-np.expm1(-2.0 * K)) - np.log1p(np.exp(-2.0 * K))
    dgamma0 = 2.0 + 2.0 * inv_sinh2k
    d2gamma0 = -4.0 * coth2k * inv_sinh2k

    k = np.stack([2 * np.arange(L) + 1, 2 * np.arange(L)])[:, None, :]
    # cosh(gamma_k) = cosh(gamma_0) + d with d = 1 - cos(pi k / L). Writing
    # u = cosh(gamma_k) - 1 without a subtraction keeps small gamma_k accurate.
    d = 2.0 * np.sin(0.5 * np.pi * k / L) ** 2
    u = 2.0 * np.sinh(0.5 * gamma0) ** 2 + d
    sinh_g = np.sqrt(u) * np.sqrt(u + 2.0)
    gamma = np.log1p(u + sinh_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Differentiate sinh(g) g' = sinh(g0) g0' twice. The difference
        # cosh(g0) g0'^2 - cosh(g) g'^2 equals g0'^2 d (cosh g0 cosh g + 1) / sinh^2 g,
        # which is used in place of the subtraction.
        dgamma = np.sinh(gamma0) * dgamma0 / sinh_g
        cross = (np.cosh(gamma0) / sinh_g) * ((1.0 + u) / sinh_g) + (1.0 / sinh_g) ** 2
        cross *= dgamma0**2 * d
        d2gamma = (cross + np.sinh(gamma0) * d2gamma0) / sinh_g
    # The even k = 0 entry is the signed gamma_0: the general formula gives
    # |gamma_0| and divides by zero where gamma_0 = 0.
    gamma[1, :, 0] = gamma0[:, 0]
    dgamma[1, :, 0] = dgamma0[:, 0]
    d2gamma[1, :, 0] = d2gamma0[:, 0]
    return gamma, dgamma, d2gamma


def _by_term(cosh_part: np.ndarray, sinh_part: np.ndarray) -> np.ndarray:
    """Stack ``(odd, even)`` cosh and sinh arrays in the order Z1, Z2, Z3, Z4."""
    return np.stack([cosh_part[0], sinh_part[0], cosh_part[1], sinh_part[1]])


def _kaufman_log_z_derivatives(L: int, K: np.ndarray):
    """Return ``ln Z`` and its first two ``K`` derivatives for a 1D array ``K > 0``.

    ``Z = 1/2 (2 sinh 2K)^(N/2) (Z1 + Z2 + Z3 + Z4)`` where Z1 and Z2 are the
    products of ``2 cosh(x_k)`` and ``2 sinh(x_k)``, ``x_k = L gamma_k / 2``, over
    odd ``k``, and Z3 and Z4 the same products over even ``k``. Each product is
    kept as ``exp(|x_first| + ln R) * phi``, where ``phi`` is its first factor over
    ``exp(|x_first|)`` and ``R`` the product of the others, which are all positive.
    The first factor of Z4 is ``2 sinh(L gamma_0 / 2)``, which changes sign at T_c
    (Z4 < 0 above T_c) and vanishes there, so its derivatives are taken directly
    and never through ``ln |Z4|``.
    """
    x, dx, d2x = (0.5 * L * g for g in _gammas(K, L))

    x0, dx0, d2x0 = x[..., 0], dx[..., 0], d2x[..., 0]
    e0, sign0 = np.exp(-2.0 * np.abs(x0)), np.sign(x0)
    phi = _by_term(1.0 + e0, sign0 * (1.0 - e0))
    dphi = _by_term(sign0 * (1.0 - e0) * dx0, (1.0 + e0) * dx0)
    d2phi = _by_term(
        (1.0 + e0) * dx0**2 + sign0 * (1.0 - e0) * d2x0,
        sign0 * (1.0 - e0) * dx0**2 + (1.0 + e0) * d2x0,
    )

    x, dx, d2x = x[..., 1:], dx[..., 1:], d2x[..., 1:]
    e = np.exp(-2.0 * x)
    tanh, coth = (1.0 - e) / (1.0 + e), (1.0 + e) / (1.0 - e)
    log_rest = _by_term(
        np.sum(x + np.log1p(e), axis=-1),
        np.sum(x + np.log(-np.expm1(-2.0 * x)), axis=-1),
    )
    rho1 = _by_term(np.sum(tanh * dx, axis=-1), np.sum(coth * dx, axis=-1))
    rho2 = _by_term(  # second derivatives of ln R, using sech^2 and -1/sinh^2
        np.sum(4.0 * e / (1.0 + e) ** 2 * dx**2 + tanh * d2x, axis=-1),
        np.sum(-4.0 * e / (1.0 - e) ** 2 * dx**2 + coth * d2x, axis=-1),
    )

    # Signed log-sum-exp. The sum is positive because Z3 > |Z4| (cosh > |sinh|).
    scale = np.abs(x0)[[0, 0, 1, 1]] + log_rest
    top = scale.max(axis=0)
    weight = np.exp(scale - top)
    total = np.sum(weight * phi, axis=0)
    weight /= total

    # Derivatives of ln(Z1 + ... + Z4). The second is written as a weighted variance
    # about mu, which avoids subtracting two terms of order N^2.
    mu = np.sum(weight * (dphi + phi * rho1), axis=0)
    centred = rho1 - mu
    var = np.sum(
        weight * (d2phi + 2.0 * dphi * centred + phi * (centred**2 + rho2)), axis=0
    )

    n = L * L
    one_minus_q2 = -np.expm1(-4.0 * K)
    log_z = -math.log(2.0) + 0.5 * n * (2.0 * K + np.log(one_minus_q2))
    log_z += top + np.log(total)
    dlog_z = n * (1.0 + np.exp(-4.0 * K)) / one_minus_q2 + mu
    d2log_z = -8.0 * n * np.exp(-4.0 * K) / one_minus_q2**2 + var
    return log_z, dlog_z, d2log_z


def kaufman(L: int, T, J: float = 1.0) -> KaufmanResult:
    """Compute exact ``ln Z``, free energy, energy and heat capacity at ``h = 0``.

    Uses Kaufman's closed form for the L x L torus, valid for every ``L >= 2``, with
    analytic derivatives in ``beta`` and all sums in log space.

    Args:
        L: linear lattice size, an integer >= 2 (``N = L * L`` sites).
        T: temperature(s) in units of energy (``k_B = 1``), finite and > 0; a
            scalar or an array of any shape.
        J: nearest-neighbour coupling. ``J < 0`` is accepted for even ``L`` only.

    Returns:
        :class:`KaufmanResult` of float64 arrays with the shape of ``T``. All but
        ``log_z`` are per spin.

    Raises:
        ValueError: if ``L`` is not an integer >= 2, a ``T`` is not finite and > 0
            or is below ``|J| / 300``, or ``J`` is zero, not finite, or negative
            with odd ``L``.

    NOTE: against 50-digit mpmath at L = 256 and ``0.5 <= T/|J| <= 10``,
    ``log_z`` and ``energy`` agree to ~1e-14 relative and ``heat_capacity`` to
    ~3e-11. At higher T the relative error of ``energy`` grows as about
    ``2e-17 (T/|J|)^2`` because two terms of size ``N T/|J|`` cancel. At lower T
    the heat capacity has an absolute error of about ``1e-16 (|J|/T)^2`` and can
    come out slightly negative.
    """
    L = check_lattice_size(L)
    T = _check_temperature(T)
    coupling = _check_coupling(J, L)
    K = coupling / T.ravel()
    if np.any(K > MAX_KAUFMAN_COUPLING):
        raise ValueError(
            f"T={float(T.min())} is invalid: kaufman needs T >= |J| / "
            f"{MAX_KAUFMAN_COUPLING:g} = {coupling / MAX_KAUFMAN_COUPLING:g} to "
            "stay within float64. Below that the torus is in its ground state to "
            "double precision: use ln Z = 2 N |J| / T + ln 2, energy -2 |J| per spin "
            "and heat capacity 0"
        )
    log_z, dlog_z, d2log_z = _kaufman_log_z_derivatives(L, K)
    n = L * L
    shape = T.shape
    return KaufmanResult(
        log_z=log_z.reshape(shape),
        free_energy=(-T.ravel() * log_z / n).reshape(shape),
        energy=(-coupling * dlog_z / n).reshape(shape),
        heat_capacity=(K**2 * d2log_z / n).reshape(shape),
    )


def kaufman_log_z(L: int, T, J: float = 1.0) -> np.ndarray:
    """Return the exact total ``ln Z`` at ``h = 0`` with the shape of ``T``.

    Arguments and errors are those of :func:`kaufman`.
    """
    return kaufman(L, T, J).log_z


def all_configurations(shape: tuple[int, ...]) -> np.ndarray:
    """Return every +-1 configuration of a lattice, int8 of shape ``(2**N, *shape)``.

    The order is that of ``itertools.product((1, -1), repeat=N)`` over the sites in
    C (row-major) order: configuration ``i`` has ``-1`` at flat site ``j`` exactly
    when bit ``N - 1 - j`` of ``i`` is set. Index 0 is all ``+1``, the last all ``-1``.

    Raises:
        ValueError: if ``shape`` is empty, a size is not a positive integer, or
            ``N > 24`` (``N = 24`` already takes 400 MB).
    """
    shape = tuple(shape)
    if not shape or any(isinstance(n, bool) or int(n) != n or n < 1 for n in shape):
        raise ValueError(
            f"shape={shape!r} is invalid: pass one or more positive integer sizes"
        )
    shape = tuple(int(n) for n in shape)
    n_sites = math.prod(shape)
    if n_sites > MAX_CONFIGURATION_SITES:
        raise ValueError(
            f"shape={shape!r} has {n_sites} sites, more than the "
            f"{MAX_CONFIGURATION_SITES} that can be enumerated; use a smaller lattice"
        )
    index = np.arange(2**n_sites, dtype=np.uint32)
    configs = np.empty((2**n_sites, n_sites), dtype=np.int8)
    for site in range(n_sites):
        bit = (index >> np.uint32(n_sites - 1 - site)) & np.uint32(1)
        configs[:, site] = 1 - 2 * bit.astype(np.int8)
    return configs.reshape(2**n_sites, *shape)


def _enumerate_states(L: int, T, J: float, h: float):
    """Return all states, their total energies and magnetizations per spin."""
    L = check_lattice_size(L)
    if L * L > MAX_ENUMERATION_SITES:
        raise ValueError(
            f"L={L} is invalid: enumeration needs L * L <= {MAX_ENUMERATION_SITES}; "
            "use kaufman for larger lattices at h = 0"
        )
    T = _check_temperature(T)
    if T.ndim != 0:
        raise ValueError(
            f"T of shape {T.shape} is invalid: pass a single temperature and loop "
            "over temperatures"
        )
    J, h = float(J), float(h)
    if not (math.isfinite(J) and math.isfinite(h)):
        raise ValueError(f"J={J}, h={h} is invalid: pass finite J and h")
    configs = all_configurations((L, L))
    s = configs.astype(np.int64)
    # Integer bond and spin sums are exact, so the energies are exact in float64.
    bonds = np.sum(s * (np.roll(s, -1, axis=-1) + np.roll(s, -1, axis=-2)), axis=(1, 2))
    spins = np.sum(s, axis=(1, 2))
    energy = -J * bonds.astype(np.float64) - h * spins.astype(np.float64)
    return configs, float(T), energy, spins / (L * L)


def boltzmann_probabilities(
    L: int, T: float, J: float = 1.0, h: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Return all states of the L x L torus and their Boltzmann probabilities.

    Returns:
        ``(configs, probs)``: ``configs`` is ``all_configurations((L, L))``, int8 of
        shape ``(2**N, L, L)``, and ``probs`` the float64 probabilities ``exp(-H/T)/Z``
        of shape ``(2**N,)`` in the same order.

    Raises:
        ValueError: if ``L * L > 16``, ``T`` is not a single finite value > 0, or
            ``J`` or ``h`` is not finite.
    """
    configs, T, energy, _ = _enumerate_states(L, T, J, h)
    log_weight = -energy / T
    probs = np.exp(log_weight - log_weight.max())
    return configs, probs / probs.sum()


def enumerate_ising(
    L: int, T: float, J: float = 1.0, h: float = 0.0
) -> EnumerationResult:
    """Compute exact thermodynamics at one temperature by summing over all states.

    Args:
        L: linear lattice size, 2 to 4 (``N = L * L <= 16``).
        T: temperature in units of energy (``k_B = 1``), finite and > 0.
        J: nearest-neighbour coupling, any sign.
        h: uniform external field.

    Returns:
        :class:`EnumerationResult`; ``log_z`` is the total ``ln Z``, the rest are
        per spin.

    Raises:
        ValueError: as :func:`boltzmann_probabilities`.
    """
    _, T, energy, m = _enumerate_states(L, T, J, h)
    n = L * L
    log_weight = -energy / T
    top = log_weight.max()
    weight = np.exp(log_weight - top)
    log_z = top + math.log(weight.sum())
    p = weight / weight.sum()

    e = energy / n
    mean_e = float(p @ e)
    abs_m = float(p @ np.abs(m))
    m2 = float(p @ m**2)
    return EnumerationResult(
        log_z=float(log_z),
        free_energy=float(-T * log_z / n),
        energy=mean_e,
        abs_m=abs_m,
        m2=m2,
        heat_capacity=float(n * (p @ (e - mean_e) ** 2) / T**2),
        susceptibility=float(n * (p @ (np.abs(m) - abs_m) ** 2) / T),
    )
