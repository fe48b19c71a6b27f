"""Description of the machine and its measured limits.

The limits are measured, not taken from a data sheet: the float32 rate of a
large ``jnp.dot`` (the ceiling for network training and sampling) and the
rate of a large array copy (the ceiling for memory-bound Monte Carlo sweeps).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata

import jax
import jax.numpy as jnp

from benchmarks.timing import best_time

__all__ = ["describe_machine", "measure_limits"]

PACKAGES = ("jax", "jaxlib", "equinox", "optax", "blackjax", "numpyro", "netket")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu_names() -> list[str]:
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


def describe_machine() -> dict:
    """Return the CPU, core count, memory, devices, package versions and load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    memory = _memory_gib()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": None if memory is None else round(memory, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
        "gpus": _gpu_names(),
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": None if load is None else [round(x, 2) for x in load],
    }


def measure_limits(quick: bool) -> dict:
    """Measure the float32 matrix multiply rate and the copy bandwidth.

    Returns:
        ``matmul_flops_per_s``: best rate of ``jnp.dot`` of two square
        float32 matrices (2 n^3 operations); ``copy_bytes_per_s``: best rate
        of copying a large float32 array, counting the read and the write.
    """
    on_gpu = jax.default_backend() == "gpu"
    if on_gpu:
        n = 8192
    elif quick:
        n = 1024
    else:
        n = 2048
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    matmul_time = best_time(dot, a, b, repeats=5)

    size = 2**28 if on_gpu else 2**25  # float32 elements: 1 GiB or 128 MiB
    x = jnp.ones((size,), jnp.float32)
    # Multiplying by a traced 1 keeps XLA from aliasing or skipping the copy.
    copy = jax.jit(lambda x, one: x * one)
    copy_time = best_time(copy, x, jnp.float32(1.0), repeats=5)
    return {
        "matmul_size": n,
        "matmul_flops_per_s": 2 * n**3 / matmul_time,
        "copy_bytes": 4 * size,
        "copy_bytes_per_s": 2 * 4 * size / copy_time,
    }
