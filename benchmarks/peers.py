"""NetKet counterparts of the measured dcl_prob paths (``pip install -e .[bench]``).

Every builder returns None when NetKet is not installed, so the benchmarks
run, with the peer columns empty, on an install without it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["netket_gru", "netket_ising_sampler", "netket_version"]


def netket_version() -> str | None:
    try:
        import netket
    except ImportError:
        return None
    return netket.__version__


def netket_ising_sampler(L: int, n_chains: int, temperature: float):
    """NetKet's ``MetropolisLocal`` on the Ising density ``exp(-E(s) / T)``.

    NetKet samples ``|psi(s)|^2``, so the model returns
    ``log psi = -E(s) / (2 T)`` with ``E = -sum_<ij> s_i s_j`` on the
    ``L x L`` torus (J = 1, h = 0). One NetKet sweep is ``L * L`` single-site
    proposals.

    Returns:
        ``sample(n_sweeps)``, which runs ``n_sweeps`` sweeps of all chains
        from the current state and returns the samples, or None.
    """
    try:
        import flax.linen as nn
        import netket as nk
    except ImportError:
        return None

    class IsingLogPsi(nn.Module):
        @nn.compact
        def __call__(self, x):
            s = x.reshape(x.shape[:-1] + (L, L))
            bonds = s * jnp.roll(s, -1, axis=-1) + s * jnp.roll(s, -1, axis=-2)
            return 0.5 * jnp.sum(bonds, axis=(-2, -1)) / temperature

    hilbert = nk.hilbert.Spin(s=0.5, N=L * L)
    model = IsingLogPsi()
    params = model.init(jax.random.key(0), jnp.ones((1, L * L), jnp.float32))
    sampler = nk.sampler.MetropolisLocal(
        hilbert, n_chains=n_chains, sweep_size=L * L, dtype=jnp.int8
    )
    holder = {"state": sampler.init_state(model, params, seed=0)}

    def sample(n_sweeps: int):
        samples, holder["state"] = sampler.sample(
            model, params, state=holder["state"], chain_length=n_sweeps
        )
        return samples

    return sample


def netket_gru(L: int, hidden_size: int, *, fast: bool):
    """NetKet's GRU autoregressive network of the same hidden width, float32.

    ``GRUNet1D(layers=2, features=H)``: NetKet counts its output layer, a GRU
    of width 2 (the local dimension), so this is one hidden GRU layer of
    width ``H`` like :class:`dcl_prob.nn.AutoregressiveGRU`. Sites are
    visited in NetKet's 1D order, each step seeing the previous site only.
    ``fast=True`` picks ``FastGRUNet1D``, which caches the hidden state
    during sampling.

    Returns:
        ``(model, variables, hilbert)`` or None. ``model.apply(variables, x)``
        is ``log psi``, so ``log p(s) = 2 log psi(s)``.
    """
    try:
        import netket as nk
        import netket.experimental as nkx
    except ImportError:
        return None
    hilbert = nk.hilbert.Spin(s=0.5, N=L * L)
    cls = nkx.models.FastGRUNet1D if fast else nkx.models.GRUNet1D
    model = cls(
        hilbert=hilbert, layers=2, features=hidden_size, param_dtype=jnp.float32
    )
    variables = model.init(jax.random.key(0), jnp.ones((2, L * L), jnp.float32))
    return model, variables, hilbert


def netket_direct_sampler(hilbert, model, variables):
    """Exact autoregressive sampling with ``ARDirectSampler``; ``sample(n)``."""
    import netket as nk

    sampler = nk.sampler.ARDirectSampler(hilbert, dtype=jnp.float32)
    holder = {"state": sampler.init_state(model, variables, seed=0)}

    def sample(n: int):
        samples, holder["state"] = sampler.sample(
            model, variables, state=holder["state"], chain_length=n
        )
        return samples

    return sample
