"""Sweeps per second of the project's samplers against generic paths and NetKet.

Usage::

    python benchmarks/sampler_speed.py [--L 32] [--chains 16] [--sweeps 200]

Measurements, each pair in one run on the same inputs and chain count:

1. The tile-aware local kernel on an energy network of the default
   architecture against the generic single-site ``blackjax.rmh`` path, which
   evaluates the whole energy network for every proposal.
2. Checkerboard Metropolis on the Ising model against NetKet's
   ``MetropolisLocal`` on the same log density ``-E(s) / T`` (NetKet samples
   ``|psi|^2``, so its model returns ``log psi = -E / (2 T)``). Skipped when
   NetKet is not installed (``pip install netket``).

Times exclude compilation: every function runs once before it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp

from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.samplers import checkerboard, single_site, tile_local

TEMPERATURE = 2.5


def random_spins(key, n_chains, L):
    up = jax.random.bernoulli(key, 0.5, (n_chains, L, L))
    return jnp.where(up, 1, -1).astype(jnp.int8)


def time_sweeps(run, states, n_sweeps, repeats=3):
    """Return the best sweeps per second of ``run(states, key) -> states``."""
    states = jax.block_until_ready(run(states, jax.random.key(0)))
    best = float("inf")
    for repeat in range(repeats):
        start = time.perf_counter()
        states = jax.block_until_ready(run(states, jax.random.key(repeat + 1)))
        best = min(best, time.perf_counter() - start)
    return n_sweeps / best


def chain_runner(kernel, n_chains, n_sweeps, temperature_argument):
    """Jitted ``n_sweeps`` sweeps of ``n_chains`` vmapped chains."""

    @jax.jit
    def run(states, key):
        def body(states, key):
            keys = jax.random.split(key, n_chains)
            states, _ = jax.vmap(kernel, in_axes=(0, 0, None))(
                keys, states, temperature_argument
            )
            return states, None

        states, _ = jax.lax.scan(body, states, jax.random.split(key, n_sweeps))
        return states

    return run


def energy_network_pair(L, n_chains, n_sweeps):
    """Tile-local kernel against generic rmh on the same energy network."""
    energy = ExtensiveEnergy(key=jax.random.key(0))
    spins = random_spins(jax.random.key(1), n_chains, L)

    local_kernel = tile_local.build_kernel(energy, L)
    local_states = jax.vmap(lambda s: tile_local.init(s, energy))(spins)
    local_run = chain_runner(local_kernel, n_chains, n_sweeps, 1.0 / TEMPERATURE)
    local_rate = time_sweeps(local_run, local_states, n_sweeps)

    generic_sweeps = max(1, n_sweeps // 50)
    generic_kernel = single_site.build_kernel(energy)
    generic_states = jax.vmap(
        lambda s: single_site.init(s, lambda x: -energy(x) / TEMPERATURE)
    )(spins)
    generic_run = chain_runner(generic_kernel, n_chains, generic_sweeps, TEMPERATURE)
    generic_rate = time_sweeps(generic_run, generic_states, generic_sweeps, repeats=1)
    return {
        "tile_local_sweeps_per_s": local_rate,
        "generic_rmh_sweeps_per_s": generic_rate,
        "speedup": local_rate / generic_rate,
    }


def checkerboard_rate(L, n_chains, n_sweeps):
    model = IsingModel()
    kernel = checkerboard.build_kernel(model)
    spins = random_spins(jax.random.key(2), n_chains, L)
    states = jax.vmap(lambda s: checkerboard.init(s, model))(spins)
    run = chain_runner(kernel, n_chains, n_sweeps, TEMPERATURE)
    return time_sweeps(run, states, n_sweeps)


def netket_rate(L, n_chains, n_sweeps):
    """Sweeps per second of NetKet's MetropolisLocal on exp(-E/T), or None."""
    try:
        import flax.linen as nn
        import netket as nk
    except ImportError:
        return None, None

    class IsingLogPsi(nn.Module):
        """log psi = -E(s) / (2 T) of the Ising model, J = 1, h = 0."""

        @nn.compact
        def __call__(self, x):
            s = x.reshape(x.shape[:-1] + (L, L))
            bonds = s * jnp.roll(s, -1, axis=-1) + s * jnp.roll(s, -1, axis=-2)
            return 0.5 * jnp.sum(bonds, axis=(-2, -1)) / TEMPERATURE

    hilbert = nk.hilbert.Spin(s=0.5, N=L * L)
    model = IsingLogPsi()
    params = model.init(jax.random.key(0), jnp.ones((1, L * L)))
    sampler = nk.sampler.MetropolisLocal(hilbert, n_chains=n_chains, sweep_size=L * L)
    state = sampler.init_state(model, params, seed=0)
    samples, state = sampler.sample(model, params, state=state, chain_length=n_sweeps)
    jax.block_until_ready(samples)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        samples, state = sampler.sample(
            model, params, state=state, chain_length=n_sweeps
        )
        jax.block_until_ready(samples)
        best = min(best, time.perf_counter() - start)
    return n_sweeps / best, nk.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=32, help="lattice size")
    parser.add_argument("--chains", type=int, default=16, help="chains")
    parser.add_argument("--sweeps", type=int, default=200, help="timed sweeps")
    args = parser.parse_args()

    report = {
        "command": "python benchmarks/sampler_speed.py "
        f"--L {args.L} --chains {args.chains} --sweeps {args.sweeps}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__} ({jax.default_backend()})",
        "L": args.L,
        "chains": args.chains,
        "temperature": TEMPERATURE,
    }
    report["energy_network"] = energy_network_pair(args.L, args.chains, args.sweeps)
    ours = checkerboard_rate(args.L, args.chains, args.sweeps)
    theirs, version = netket_rate(args.L, args.chains, args.sweeps)
    report["ising"] = {
        "checkerboard_sweeps_per_s": ours,
        "netket_metropolis_local_sweeps_per_s": theirs,
        "netket_version": version,
        "speedup": None if theirs is None else ours / theirs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
