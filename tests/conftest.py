"""Shared fixtures: one small data set and one small fitted model per session.

JAX compiles once per function and shape, so the tests share these fixtures
and a few lattice shapes instead of fitting their own models.
"""

import warnings

import jax
import pytest

warnings.filterwarnings(
    "ignore", message=".*ArviZ is undergoing", category=FutureWarning
)

from notebook_runner import BackgroundNotebooks  # noqa: E402

from dcl_prob.fit import FitConfig, fit  # noqa: E402
from dcl_prob.hamiltonians import IsingModel  # noqa: E402
from dcl_prob.montecarlo import simulate  # noqa: E402


def pytest_collection_modifyitems(session, config, items):
    """Start the notebooks in the background when their tests were collected."""
    if any(item.path.name == "test_notebooks.py" for item in items):
        config.background_notebooks = BackgroundNotebooks()


def pytest_unconfigure(config):
    """Delete the background notebook outputs."""
    runs = getattr(config, "background_notebooks", None)
    if runs is not None:
        runs.close()


TRAIN_L = 4
TRAIN_T = 3.0
SMALL_FIT = FitConfig(
    hidden_size=16,
    q_steps=300,
    energy_steps=600,
    batch_size=128,
    n_q_samples=1024,
    chunk_size=50,
)


@pytest.fixture(scope="session")
def small_data():
    """4000 Wolff samples of the 4 x 4 Ising model at T = 3 (seed 0)."""
    result = simulate(
        IsingModel(), TRAIN_L, TRAIN_T, 4000, key=jax.random.key(0), progress=False
    )
    return result


@pytest.fixture(scope="session")
def small_fit(small_data):
    """q and E fitted to ``small_data`` with small settings (seed 1)."""
    return fit(
        small_data.spins,
        TRAIN_T,
        key=jax.random.key(1),
        config=SMALL_FIT,
        progress=False,
    )
