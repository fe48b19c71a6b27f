"""Curvature adjustment of the pseudo-likelihood, so that its posterior is calibrated.

The pseudo-likelihood ``PL(theta) = prod_n prod_i p(s_i | rest)`` treats the
sites of a configuration as independent, and they are not. Its maximiser is
still a consistent estimator, but a posterior ``pi(theta) PL(theta)`` has the
wrong width. With ``l(theta) = log PL(theta) = sum_n l_n(theta)``:

- ``theta_hat`` maximises ``l(theta) + log pi(theta)`` (the prior only keeps
  the maximiser finite when the data never break some bond);
- ``H = -grad^2 l(theta_hat)`` is the curvature of the log pseudo-likelihood;
- ``J = sum_b (G_b - G_mean)(G_b - G_mean)^T * B / (B - 1)`` is the covariance
  of the scores ``G_b``, the sums of ``g_n = grad l_n(theta_hat)`` over ``B``
  blocks of ``block_size`` consecutive configurations. With
  ``block_size = 1`` and a maximiser without prior this is
  ``sum_n g_n g_n^T``.

For large data sets ``theta_hat`` is approximately normal with the sandwich
covariance ``Sigma = H^-1 J H^-1``, while the posterior of ``l`` is
approximately ``N(theta_hat, H^-1)``. The two agree only if ``J = H``, the
information identity of a true likelihood, which fails for the pseudo-
likelihood because the site conditionals of one configuration are dependent.
For the Ising ``J`` far above ``T_c`` each bond enters the conditionals of
both its sites, so ``J / H`` tends to 2 and the unadjusted posterior is too
narrow. Near ``T_c`` the ratio drops below 1, and the posterior is too wide.
``benchmarks/bayes_calibration.py`` measured ``J / H`` of 1.79 at T = 6,
1.30 at T = 3 and 0.77 at T = 2.269 for the 8 x 8 model with ``J = 1``.

The adjusted log pseudo-likelihood is ``l_adj(theta) = l(theta_hat + C (theta
- theta_hat))`` for a ``(p, p)`` matrix ``C``. Expanding ``l`` to second order
around its maximum gives ``l_adj(theta) ~ l(theta_hat) - 1/2 d^T C^T H C d``
with ``d = theta - theta_hat``, so the adjusted posterior is approximately
``N(theta_hat, (C^T H C)^-1)``. Calibration requires ``(C^T H C)^-1 = Sigma``,
that is ``C^T H C = Sigma^-1 = H J^-1 H``. With the Cholesky factors
``H = A A^T`` and ``Sigma^-1 = B B^T`` the choice ``C = A^-T B^T`` solves it:
``C^T H C = B A^-1 A A^T A^-T B^T = B B^T``. For one coupling this is
``C = sqrt(H / J)``, which scales ``l`` near its maximum by ``w = C^2 = H / J``.
``C`` is unique up to an orthogonal factor (``A^-T Q B^T``), and every
choice gives the same normal approximation. Unlike a power ``PL^w``, the
transform keeps the maximiser and the shape of ``l`` (its skewness, say) and
only stretches the coupling axes, and it works for any number of couplings.
The sum over configurations stays a sum: ``l_adj(theta) = sum_n
l_n(theta_hat + C (theta - theta_hat))``, which is what the pointwise log
likelihood of :mod:`dcl_prob.bayes` stores.

Block scores cover correlation between consecutive configurations, such as
configurations of one Markov chain taken without thinning: pass a
``block_size`` of at least twice the integrated autocorrelation time. The
relative error of ``J`` from ``B`` blocks is about ``sqrt(2 / B)``, so the
adjustment needs many blocks per coupling.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CurvatureAdjustment",
    "curvature_adjustment",
    "identity_adjustment",
]

logger = logging.getLogger(__name__)

# Configurations per call of the derivative functions, to bound the memory of
# forward-mode derivatives of many couplings (the spin glass).
_CHUNK_CONFIGS = 1024
_MAX_NEWTON_STEPS = 100
# Stop when the Newton decrement g^T H^-1 g, about twice the remaining gain
# in the log objective, is below this.
_NEWTON_TOLERANCE = 1e-9
# Fewer blocks than this many per coupling give a noisy score covariance J.
MIN_BLOCKS_PER_COUPLING = 4


class CurvatureAdjustment(NamedTuple):
    """The affine map ``theta -> mode + matrix @ (theta - mode)`` of the
    adjusted pseudo-likelihood, and the matrices it comes from.

    :func:`identity_adjustment` gives the unadjusted pseudo-likelihood.
    """

    mode: jax.Array  # float32, shape (p,): theta_hat
    matrix: jax.Array  # float32, shape (p, p): C
    # float64, shape (p, p): H = -grad^2 log PL at theta_hat; None when
    # unadjusted
    hessian: np.ndarray | None = None
    # float64, shape (p, p): J, covariance of the block scores; None when
    # unadjusted
    score_covariance: np.ndarray | None = None
    n_blocks: int = 0  # number of score blocks B

    def sandwich_covariance(self) -> np.ndarray:
        """``H^-1 J H^-1``, the asymptotic covariance of ``theta_hat``; ``(p, p)``."""
        inverse = np.linalg.inv(self.hessian)
        return inverse @ self.score_covariance @ inverse


def identity_adjustment(p: int) -> CurvatureAdjustment:
    """Return the map of the unadjusted pseudo-likelihood (``C = I``).

    Args:
        p: number of couplings.

    Returns:
        :class:`CurvatureAdjustment` with a zero mode ``(p,)`` and the identity
        matrix ``(p, p)``, float32.
    """
    return CurvatureAdjustment(
        mode=jnp.zeros((p,), jnp.float32), matrix=jnp.eye(p, dtype=jnp.float32)
    )


@partial(jax.jit, static_argnames="family")
def _chunk_derivatives(theta, features, temperature, *, family):
    """Summed log PL of one chunk, its per-configuration scores ``(chunk, p)``
    and the Hessian of the sum ``(p, p)``."""

    def per_config(t):
        return family.log_pl(t, features, temperature)

    value = jnp.sum(per_config(theta))
    scores = jax.jacfwd(per_config)(theta)
    hessian = jax.jacfwd(jax.grad(lambda t: jnp.sum(per_config(t))))(theta)
    return value, scores, hessian


def _log_pl_derivatives(family, features, temperature, theta):
    """Value, per-configuration scores ``(n, p)`` and Hessian of the log PL."""
    value, scores, hessian = 0.0, [], 0.0
    for start in range(0, len(features), _CHUNK_CONFIGS):
        chunk = features[start : start + _CHUNK_CONFIGS]
        v, g, h = _chunk_derivatives(theta, chunk, temperature, family=family)
        value, hessian = value + float(v), hessian + np.asarray(h)
        scores.append(np.asarray(g))
    return value, np.concatenate(scores), hessian


def _maximise(family, features, temperature, p: int, prior_precision: float):
    """Newton's method with backtracking on the concave ``log PL + log prior``.

    Returns ``(theta_hat, scores, H)`` in float64: the per-configuration
    scores at ``theta_hat`` and ``H`` without the prior term.
    """
    theta = np.zeros(p)
    value, scores, hessian = _log_pl_derivatives(
        family, features, temperature, jnp.asarray(theta)
    )
    for _ in range(_MAX_NEWTON_STEPS):
        gradient = scores.sum(axis=0) - prior_precision * theta
        curvature = -hessian + prior_precision * np.eye(p)
        step = np.linalg.solve(curvature, gradient)
        decrement = float(gradient @ step)
        if decrement < _NEWTON_TOLERANCE:
            return theta, scores, -hessian
        current = value - 0.5 * prior_precision * float(theta @ theta)
        size = 1.0
        while True:
            trial = theta + size * step
            result = _log_pl_derivatives(
                family, features, temperature, jnp.asarray(trial)
            )
            gain = result[0] - 0.5 * prior_precision * float(trial @ trial) - current
            if gain >= 0.25 * size * decrement or size < 1e-10:
                break
            size *= 0.5
        theta = trial
        value, scores, hessian = result
    warnings.warn(
        f"the pseudo-likelihood maximiser did not converge in {_MAX_NEWTON_STEPS} "
        f"Newton steps (last decrement {decrement:.3g}); the adjustment may be "
        "inaccurate: check that the data are not all in one state, or use "
        "adjusted=False",
        UserWarning,
        stacklevel=3,
    )
    return theta, scores, -hessian


def _block_score_covariance(scores: np.ndarray, block_size: int):
    """``J`` of the module docstring and the number of blocks ``B``."""
    starts = np.arange(0, len(scores), block_size)
    blocks = np.add.reduceat(scores, starts, axis=0)
    n_blocks = len(blocks)
    centred = blocks - blocks.mean(axis=0)
    return centred.T @ centred * n_blocks / (n_blocks - 1), n_blocks


def _with_jitter(matrix: np.ndarray) -> np.ndarray:
    """Symmetrise and add ``1e-10`` of the mean diagonal, for the Cholesky factor."""
    matrix = 0.5 * (matrix + matrix.T)
    scale = max(float(np.trace(matrix)) / len(matrix), 1e-300)
    return matrix + 1e-10 * scale * np.eye(len(matrix))


def curvature_adjustment(
    family,
    features,
    temperature: float,
    *,
    prior_scale: float,
    block_size: int = 1,
) -> CurvatureAdjustment:
    """Compute ``theta_hat``, ``H``, ``J`` and ``C`` of the module docstring.

    Args:
        family: a coupling family of :mod:`dcl_prob.bayes_families`.
        features: ``family.pl_features(spins)``, leading axis the ``n``
            configurations in data order.
        temperature: ``T`` of the data (k_B = 1).
        prior_scale: standard deviation of the normal prior of each coupling
            (energy units), which keeps ``theta_hat`` finite.
        block_size: consecutive configurations whose scores are summed before
            their covariance is taken; 1 for independent configurations.

    Returns:
        A :class:`CurvatureAdjustment`. Derivatives are taken in float64.

    Warns:
        UserWarning: when there are fewer than ``MIN_BLOCKS_PER_COUPLING``
            blocks per coupling, so that ``J`` is poorly estimated, or when
            the maximiser does not converge.
    """
    p = family.dimension
    n = int(features.shape[0])
    if n // block_size < 2:
        raise ValueError(
            f"block_size={block_size} leaves fewer than 2 blocks of the {n} "
            "configurations: use a smaller block_size or more configurations"
        )
    with jax.enable_x64(True):
        theta_hat, scores, hessian = _maximise(
            family,
            jnp.asarray(features, jnp.float64),
            jnp.float64(temperature),
            p,
            1.0 / prior_scale**2,
        )
    covariance, n_blocks = _block_score_covariance(scores, block_size)
    if n_blocks < MIN_BLOCKS_PER_COUPLING * p:
        warnings.warn(
            f"the score covariance of {p} couplings comes from only {n_blocks} "
            f"blocks of {block_size} configurations (fewer than "
            f"{MIN_BLOCKS_PER_COUPLING} per coupling), so the adjusted intervals "
            "are unreliable; use more configurations, a smaller block_size, or "
            "adjusted=False",
            UserWarning,
            stacklevel=3,
        )
    hessian_factor = np.linalg.cholesky(_with_jitter(hessian))
    target_precision = hessian @ np.linalg.solve(_with_jitter(covariance), hessian)
    target_factor = np.linalg.cholesky(_with_jitter(target_precision))
    matrix = np.linalg.solve(hessian_factor.T, target_factor.T)
    naive_sd = np.sqrt(np.diag(np.linalg.inv(_with_jitter(hessian))))
    sandwich_sd = np.sqrt(np.diag(np.linalg.inv(_with_jitter(target_precision))))
    logger.info(
        "pseudo-likelihood adjustment: theta_hat=%s, sd unadjusted %s, sandwich %s",
        np.round(theta_hat[:4], 4),
        np.round(naive_sd[:4], 4),
        np.round(sandwich_sd[:4], 4),
    )
    return CurvatureAdjustment(
        mode=jnp.asarray(theta_hat, jnp.float32),
        matrix=jnp.asarray(matrix, jnp.float32),
        hessian=hessian,
        score_covariance=covariance,
        n_blocks=n_blocks,
    )
