"""Timing helpers and operation counts shared by the benchmark groups."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import jax
import numpy as np

__all__ = ["best_time", "bytes_accessed", "matmul_flops"]


def best_time(fn: Callable, *args, repeats: int = 3) -> float:
    """Return the shortest wall time in seconds of ``fn(*args)`` over ``repeats``.

    ``fn`` runs once before timing, so compilation is excluded, and every call
    ends with ``jax.block_until_ready`` on its output.
    """
    jax.block_until_ready(fn(*args))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def _dot_flops(eqn) -> int:
    lhs, _ = (v.aval for v in eqn.invars)
    (contracting, _), _ = eqn.params["dimension_numbers"]
    depth = int(np.prod([lhs.shape[d] for d in contracting])) if contracting else 1
    return 2 * int(np.prod(eqn.outvars[0].aval.shape)) * depth


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        items = value if isinstance(value, tuple | list) else (value,)
        for item in items:
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def _count(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "cond":
            total += max(_count(b.jaxpr) for b in eqn.params["branches"])
        else:
            inner = sum(_count(sub) for sub in _sub_jaxprs(eqn))
            total += inner * (eqn.params["length"] if name == "scan" else 1)
    return total


def matmul_flops(fn: Callable, *args) -> int:
    """Count the floating-point operations of the matrix products in ``fn(*args)``.

    Walks the jaxpr: each ``dot_general`` costs 2 x output size x contracted
    size, a ``scan`` body counts once per iteration and a ``cond`` counts its
    most expensive branch. XLA's ``cost_analysis()`` counts a loop body only
    once, whatever its trip count, so it undercounts the scans over sites of
    the autoregressive networks. ``while`` bodies (Wolff cluster growth) have
    no static trip count and count once. Element-wise work is left out.
    """
    return _count(jax.make_jaxpr(fn)(*args).jaxpr)


def bytes_accessed(fn: Callable, *args) -> float | None:
    """Return XLA's estimate of the bytes read and written by ``jit(fn)(*args)``.

    From ``jax.jit(fn).lower(*args).compile().cost_analysis()``; loop bodies
    count once, so pass a function without loops for a per-call figure. None
    when the backend gives no estimate.
    """
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    if not analysis or "bytes accessed" not in analysis:
        return None
    return float(analysis["bytes accessed"])
