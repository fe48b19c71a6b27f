"""Speed of dcl_prob against NetKet and against its own generic paths.

Each comparison runs both sides in this process on the same inputs: the same
lattice, chain count, temperature, batch and hidden width. Times exclude
compilation and are the best of several repeats. Beside each rate is the
fraction of the machine's measured limit (:mod:`benchmarks.machine`): matrix
multiply FLOPs per second for the networks, copy bandwidth for the
Ising sweeps.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from benchmarks import peers
from benchmarks.timing import best_time, bytes_accessed, matmul_flops
from dcl_prob.hamiltonians import IsingModel
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.nn.rnn import AutoregressiveGRU
from dcl_prob.objectives import negative_log_likelihood
from dcl_prob.samplers import checkerboard, single_site, tile_local

__all__ = [
    "chain_runner",
    "energy_network_pair",
    "gru_pair",
    "ising_pair",
    "random_spins",
    "run_speed",
]

TEMPERATURE = 2.5


def random_spins(key: jax.Array, n_chains: int, L: int) -> jax.Array:
    """Return uniformly random spins +-1 of shape ``(n_chains, L, L)``, int8."""
    up = jax.random.bernoulli(key, 0.5, (n_chains, L, L))
    return jnp.where(up, 1, -1).astype(jnp.int8)


def chain_runner(kernel, n_chains: int, n_sweeps: int, temperature_argument):
    """Return jitted ``run(states, key)``: ``n_sweeps`` sweeps of vmapped chains."""

    def one_sweep(states, key):
        keys = jax.random.split(key, n_chains)
        states, _ = jax.vmap(kernel, in_axes=(0, 0, None))(
            keys, states, temperature_argument
        )
        return states

    @jax.jit
    def run(states, key):
        def body(states, key):
            return one_sweep(states, key), None

        states, _ = jax.lax.scan(body, states, jax.random.split(key, n_sweeps))
        return states

    run.one_sweep = one_sweep
    return run


def _sweep_rate(run, states, n_sweeps: int, repeats: int) -> float:
    seconds = best_time(run, states, jax.random.key(1), repeats=repeats)
    return n_sweeps / seconds


def ising_pair(L: int, n_chains: int, n_sweeps: int, peer_sweeps: int, limits):
    """Checkerboard Metropolis against NetKet's ``MetropolisLocal``, Ising, T = 2.5."""
    model = IsingModel()
    kernel = checkerboard.build_kernel(model)
    spins = random_spins(jax.random.key(2), n_chains, L)
    states = jax.vmap(lambda s: checkerboard.init(s, model))(spins)
    run = chain_runner(kernel, n_chains, n_sweeps, TEMPERATURE)
    ours = _sweep_rate(run, states, n_sweeps, repeats=3)
    sweep_bytes = bytes_accessed(run.one_sweep, states, jax.random.key(0))

    result = {
        "L": L,
        "chains": n_chains,
        "temperature": TEMPERATURE,
        "ours_sweeps_per_s": ours,
        "ours_spin_updates_per_s": ours * n_chains * L * L,
        "ours_bytes_per_sweep": sweep_bytes,
        "ours_bandwidth_fraction": None
        if sweep_bytes is None
        else sweep_bytes * ours / limits["copy_bytes_per_s"],
        "peer": None,
    }
    sample = peers.netket_ising_sampler(L, n_chains, TEMPERATURE)
    if sample is not None:
        theirs = peer_sweeps / best_time(sample, peer_sweeps, repeats=3)
        result["peer"] = {
            "name": f"NetKet {peers.netket_version()} MetropolisLocal",
            "sweeps_per_s": theirs,
            "spin_updates_per_s": theirs * n_chains * L * L,
        }
        result["ratio"] = ours / theirs
    return result


def _train_step(loss_fn, params, learning_rate=1e-3):
    """Return jitted ``step(params, opt_state, batch)`` of Adam and its state."""
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, optimizer.init(params)


def _time_steps(step, params, opt_state, batch, n_steps: int, repeats: int):
    def run(params, opt_state):
        for _ in range(n_steps):
            params, opt_state, loss = step(params, opt_state, batch)
        return loss

    return n_steps / best_time(run, params, opt_state, repeats=repeats)


def _our_gru(L: int, hidden_size: int):
    net = AutoregressiveGRU(
        L, hidden_size, key=jax.random.key(0), position_encoding="boundary"
    )
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(params, batch):
        return negative_log_likelihood(eqx.combine(params, static), batch)

    return net, params, loss


def _netket_loss(model, n_sites: int):
    def loss(variables, batch):
        flat = batch.reshape(batch.shape[0], -1).astype(jnp.float32)
        return -2.0 * jnp.mean(model.apply(variables, flat)) / n_sites

    return loss


def gru_pair(L, hidden_size, batch_size, n_steps, n_samples, limits, repeats=3):
    """GRU likelihood training and exact sampling against NetKet's GRU."""
    n_sites = L * L
    batch = random_spins(jax.random.key(3), batch_size, L)
    peak = limits["matmul_flops_per_s"]

    net, params, loss = _our_gru(L, hidden_size)
    step, opt_state = _train_step(loss, params)
    train_rate = _time_steps(step, params, opt_state, batch, n_steps, repeats)
    train_flops = matmul_flops(step, params, opt_state, batch)
    sample = jax.jit(lambda key: net.sample(n_samples, key=key))
    sample_rate = n_samples / best_time(sample, jax.random.key(4), repeats=repeats)
    sample_flops = matmul_flops(sample, jax.random.key(4))
    result = {
        "L": L,
        "hidden_size": hidden_size,
        "batch_size": batch_size,
        "n_samples": n_samples,
        "ours": {
            "train_steps_per_s": train_rate,
            "train_configurations_per_s": train_rate * batch_size,
            "train_matmul_flops_per_step": train_flops,
            "train_flops_fraction": train_flops * train_rate / peak,
            "sample_configurations_per_s": sample_rate,
            "sample_matmul_flops_per_configuration": sample_flops / n_samples,
            "sample_flops_fraction": sample_flops * sample_rate / n_samples / peak,
        },
        "peer": None,
    }

    built = peers.netket_gru(L, hidden_size, fast=False)
    if built is None:
        return result
    model, variables, hilbert = built
    nk_step, nk_opt_state = _train_step(_netket_loss(model, n_sites), variables)
    nk_train = _time_steps(nk_step, variables, nk_opt_state, batch, n_steps, repeats)
    nk_train_flops = matmul_flops(nk_step, variables, nk_opt_state, batch)
    fast_model, fast_variables, _ = peers.netket_gru(L, hidden_size, fast=True)
    nk_sample = peers.netket_direct_sampler(hilbert, fast_model, fast_variables)
    nk_sample_rate = n_samples / best_time(nk_sample, n_samples, repeats=repeats)
    # The fast sampler runs one cell step per site and sample, the work of one
    # forward pass, counted here from log psi of n_samples configurations.
    forward = jax.jit(lambda v, x: fast_model.apply(v, x))
    flat = batch.reshape(batch_size, -1).astype(jnp.float32)
    nk_sample_flops = matmul_flops(forward, fast_variables, flat) / batch_size
    result["peer"] = {
        "name": f"NetKet {peers.netket_version()} GRUNet1D / FastGRUNet1D "
        f"(layers=2, features={hidden_size}, float32)",
        "train_steps_per_s": nk_train,
        "train_configurations_per_s": nk_train * batch_size,
        "train_matmul_flops_per_step": nk_train_flops,
        "train_flops_fraction": nk_train_flops * nk_train / peak,
        "sample_configurations_per_s": nk_sample_rate,
        "sample_matmul_flops_per_configuration": nk_sample_flops,
        "sample_flops_fraction": nk_sample_flops * nk_sample_rate / peak,
    }
    result["train_ratio"] = train_rate / nk_train
    result["sample_ratio"] = sample_rate / nk_sample_rate
    return result


def energy_network_pair(
    L: int, n_chains: int, n_sweeps: int, generic_sweeps: int, limits
):
    """Tile-aware local kernel against generic ``blackjax.rmh`` on one network."""
    energy = ExtensiveEnergy(key=jax.random.key(0))
    spins = random_spins(jax.random.key(1), n_chains, L)
    beta = 1.0 / TEMPERATURE

    local_kernel = tile_local.build_kernel(energy, L)
    local_states = jax.vmap(lambda s: tile_local.init(s, energy))(spins)
    local_run = chain_runner(local_kernel, n_chains, n_sweeps, beta)
    local_rate = _sweep_rate(local_run, local_states, n_sweeps, repeats=3)
    local_flops = matmul_flops(local_run.one_sweep, local_states, jax.random.key(0))

    generic_kernel = single_site.build_kernel(energy)
    generic_states = jax.vmap(
        lambda s: single_site.init(s, lambda x: -energy(x) / TEMPERATURE)
    )(spins)
    generic_run = chain_runner(generic_kernel, n_chains, generic_sweeps, TEMPERATURE)
    generic_rate = _sweep_rate(generic_run, generic_states, generic_sweeps, repeats=1)
    generic_flops = matmul_flops(
        generic_run.one_sweep, generic_states, jax.random.key(0)
    )
    peak = limits["matmul_flops_per_s"]
    return {
        "L": L,
        "chains": n_chains,
        "temperature": TEMPERATURE,
        "tile_local_sweeps_per_s": local_rate,
        "tile_local_matmul_flops_per_sweep": local_flops,
        "tile_local_flops_fraction": local_flops * local_rate / peak,
        "generic_rmh_sweeps_per_s": generic_rate,
        "generic_rmh_matmul_flops_per_sweep": generic_flops,
        "generic_rmh_flops_fraction": generic_flops * generic_rate / peak,
        "ratio": local_rate / generic_rate,
    }


SETTINGS = {
    "quick": {
        "ising": {"L": 32, "n_chains": 16, "n_sweeps": 200, "peer_sweeps": 20},
        "gru": {
            "L": 8,
            "hidden_size": 64,
            "batch_size": 256,
            "n_steps": 3,
            "n_samples": 1024,
        },
        "energy_network": {
            "L": 32,
            "n_chains": 16,
            "n_sweeps": 50,
            "generic_sweeps": 1,
        },
    },
    "full": {
        "ising": {"L": 32, "n_chains": 16, "n_sweeps": 1000, "peer_sweeps": 100},
        "gru": {
            "L": 16,
            "hidden_size": 64,
            "batch_size": 256,
            "n_steps": 10,
            "n_samples": 4096,
        },
        "energy_network": {
            "L": 32,
            "n_chains": 16,
            "n_sweeps": 200,
            "generic_sweeps": 4,
        },
    },
}


def run_speed(mode: str, limits: dict, log) -> dict:
    """Run the three comparisons with the settings of ``mode``."""
    settings = SETTINGS[mode]
    log("speed: checkerboard Ising against NetKet MetropolisLocal")
    ising = ising_pair(**settings["ising"], limits=limits)
    log("speed: GRU training and sampling against NetKet")
    gru = gru_pair(**settings["gru"], limits=limits)
    log("speed: tile-aware EDNN kernel against generic rmh")
    ednn = energy_network_pair(**settings["energy_network"], limits=limits)
    return {"settings": settings, "ising": ising, "gru": gru, "energy_network": ednn}
