"""The device mesh of data-parallel fits and chain-parallel sampling.

One code path serves one device, several devices of one host and several
hosts: :func:`current_mesh` is a one-dimensional :class:`jax.sharding.Mesh`
over every device in :func:`jax.devices` (all processes after
:func:`initialize_distributed`), with the axis :data:`AXIS`. The training
loop and the Monte Carlo driver copy the parameters to every device and split
the batch axis of the data and the chain axis of the states over the mesh.
XLA's partitioner inserts the communication between devices. With one device
the mesh has one entry and the placements are trivial.

Sizes that do not divide evenly: a batch drawn inside a compiled step may
have any size, because XLA pads the last shard internally. Arrays placed
from the host need a multiple of the device count, so streamed batches
reject other batch sizes (:func:`check_divisible`), and
:func:`dcl_prob.transfer.run_chains` pads the chains with copies of its first
chains and drops them from the results.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "AXIS",
    "DISTRIBUTED_ENV",
    "check_divisible",
    "constrain_rows",
    "current_mesh",
    "device_mesh",
    "initialize_distributed",
    "is_primary_process",
    "padded_size",
    "replicate",
    "replicated",
    "row_sharding",
    "shard_rows",
    "use_devices",
]

logger = logging.getLogger(__name__)

#: Name of the mesh axis that splits batches of configurations and chains.
AXIS = "batch"

_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "dcl_prob_mesh", default=None
)


def device_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Return a one-dimensional mesh over ``devices`` (default: all devices).

    The axis is :data:`AXIS`, of type ``Auto``, so that XLA partitions the
    compiled functions from the shardings of their inputs.

    Args:
        devices: the devices of the mesh, in mesh order. None uses
            :func:`jax.devices`, which after :func:`initialize_distributed`
            lists the devices of every process.

    Returns:
        A :class:`jax.sharding.Mesh` of shape ``(len(devices),)``.

    Raises:
        ValueError: if ``devices`` is empty.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty: pass at least one jax.Device")
    return Mesh(np.asarray(devices), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def current_mesh() -> Mesh:
    """Return the mesh set by :func:`use_devices`, else one over all devices.

    Returns:
        The innermost active :func:`use_devices` mesh, else a new
        :func:`device_mesh` over :func:`jax.devices`.
    """
    mesh = _MESH.get()
    return device_mesh() if mesh is None else mesh


@contextlib.contextmanager
def use_devices(devices: Sequence[jax.Device]) -> Iterator[Mesh]:
    """Run fits and chains inside the block on ``devices`` only.

    For example ``with use_devices(jax.devices()[:1]):`` runs on one device
    in a process that has several. Inside the block :func:`current_mesh`
    returns the mesh over ``devices``. On exit the previous mesh is restored,
    also when the block raises.

    Args:
        devices: the devices to use, at least one.

    Yields:
        The :class:`jax.sharding.Mesh` over ``devices``.

    Raises:
        ValueError: if ``devices`` is empty.
    """
    token = _MESH.set(device_mesh(devices))
    try:
        yield _MESH.get()
    finally:
        _MESH.reset(token)


def replicated(mesh: Mesh) -> NamedSharding:
    """Return the sharding that keeps a full copy on every device of ``mesh``.

    Args:
        mesh: the device mesh.

    Returns:
        A :class:`jax.sharding.NamedSharding` with an empty partition spec.
    """
    return NamedSharding(mesh, P())


def row_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Return the sharding that splits array axis ``axis`` over the devices.

    Args:
        mesh: the device mesh.
        axis: the array axis split along :data:`AXIS`, counted from 0. The
            other axes are not split.

    Returns:
        A :class:`jax.sharding.NamedSharding` that gives each device one
        block of consecutive indices along ``axis``, in mesh order.
    """
    return NamedSharding(mesh, P(*([None] * axis), AXIS))


def _place(leaf, sharding: NamedSharding):
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
        return leaf
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
        return leaf
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return leaf  # typed keys have no host form; jit moves them as needed
    # Every process passes the same host values, and each places the parts
    # that its own devices hold, so this also works across hosts.
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree, mesh: Mesh):
    """Copy every array leaf of ``tree`` to every device of ``mesh``.

    Other leaves, and typed PRNG keys, are returned unchanged. Across hosts
    every process must pass the same values.

    Args:
        tree: a pytree whose array leaves are JAX or NumPy arrays or NumPy
            scalars, of any shape and dtype.
        mesh: the device mesh.

    Returns:
        ``tree`` with each such leaf a :class:`jax.Array` of the same shape and
        dtype, sharded by :func:`replicated`. A leaf that already has that
        sharding is returned as it is.
    """
    sharding = replicated(mesh)
    return jax.tree.map(lambda leaf: _place(leaf, sharding), tree)


def shard_rows(tree, mesh: Mesh, axis: int = 0):
    """Split axis ``axis`` of every array leaf of ``tree`` over the devices.

    Leaves that are not arrays, and typed PRNG keys, are returned unchanged.
    Across hosts every process must pass the same values.

    Args:
        tree: a pytree whose array leaves have at least ``axis + 1``
            dimensions.
        mesh: the device mesh.
        axis: the array axis to split, counted from 0.

    Returns:
        ``tree`` with each array leaf a :class:`jax.Array` of the same shape
        and dtype, sharded by :func:`row_sharding`.

    Raises:
        ValueError: if a leaf's size along ``axis`` is not a multiple of the
            number of devices.
    """
    sharding = row_sharding(mesh, axis)

    def place(leaf):
        if isinstance(leaf, jax.Array | np.ndarray):
            check_divisible(f"array axis {axis}", leaf.shape[axis], mesh)
        return _place(leaf, sharding)

    return jax.tree.map(place, tree)


def constrain_rows(x: jax.Array, mesh: Mesh, axis: int = 0) -> jax.Array:
    """Ask XLA to split axis ``axis`` of ``x`` over the devices (inside ``jit``).

    Any size works: XLA pads a last shard that is smaller than the others.

    Args:
        x: an array traced inside ``jax.jit``, with at least ``axis + 1``
            dimensions.
        mesh: the device mesh.
        axis: the array axis to split, counted from 0.

    Returns:
        ``x`` with the same shape, dtype and values, under a sharding
        constraint of :func:`row_sharding`.
    """
    return jax.lax.with_sharding_constraint(x, row_sharding(mesh, axis))


def padded_size(n: int, mesh: Mesh) -> int:
    """Return the smallest multiple of the device count that is at least ``n``.

    Args:
        n: a count, such as the number of chains.
        mesh: the device mesh, whose size is the device count.

    Returns:
        ``ceil(n / mesh.size) * mesh.size``.
    """
    return -(-n // mesh.size) * mesh.size


def check_divisible(name: str, value: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless ``value`` is a multiple of the device count.

    Args:
        name: the name of the value in the error message, such as
            ``"batch_size"``.
        value: the size to check, such as a batch size.
        mesh: the device mesh, whose size is the device count.

    Raises:
        ValueError: if ``value`` is not a multiple of ``mesh.size``. The
            message names the nearest valid sizes.
    """
    devices = mesh.size
    if value % devices == 0:
        return
    lower = value // devices * devices
    upper = lower + devices
    choices = f"{lower} or {upper}" if lower > 0 else f"{upper}"
    raise ValueError(
        f"{name}={value} is not a multiple of the {devices} devices it is split "
        f"over; use {choices}"
    )


def is_primary_process() -> bool:
    """Return whether this is process 0, the one that writes outputs.

    Returns:
        True for process 0 of :func:`jax.process_index`, which is also the only
        process of a run that did not call :func:`initialize_distributed`.
    """
    return jax.process_index() == 0


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join a multi-process run through :func:`jax.distributed.initialize`.

    JAX accepts the call only before its first computation. Importing
    :mod:`dcl_prob` imports BlackJAX, which computes at import time, so call
    :func:`jax.distributed.initialize` yourself before that import, or set
    :data:`DISTRIBUTED_ENV`, which makes this module call this function while
    :mod:`dcl_prob` is imported. Under SLURM, Open MPI and on Cloud TPU, JAX
    reads all three values from the environment. Elsewhere pass them: the
    address is the ``host:port`` that process 0 listens on. Afterwards
    :func:`current_mesh` spans the devices of every process. A second call
    does nothing.

    Args:
        coordinator_address: ``host:port`` of process 0, or None to let JAX
            read it from the environment.
        num_processes: number of processes of the run, or None to let JAX
            read it from the environment.
        process_id: index of this process, ``0 .. num_processes - 1``, or
            None to let JAX read it from the environment.

    Raises:
        RuntimeError: from :func:`jax.distributed.initialize` if JAX has
            already computed in this process.
        ValueError: from :func:`jax.distributed.initialize` if a value is
            neither passed nor found in the environment, or ``process_id``
            is not below ``num_processes``.
    """
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    logger.info(
        "process %d of %d joined: %d local and %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


#: Environment variable that makes importing :mod:`dcl_prob` join a
#: multi-process run. Where no cluster scheduler sets them,
#: ``DCL_PROB_NUM_PROCESSES`` and ``DCL_PROB_PROCESS_ID`` give the process
#: count and index, and ``JAX_COORDINATOR_ADDRESS`` the coordinator's
#: ``host:port``.
DISTRIBUTED_ENV = "DCL_PROB_DISTRIBUTED"


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={value!r} is invalid: use an integer"
        ) from None


if os.environ.get(DISTRIBUTED_ENV, "0") not in ("", "0"):
    # NOTE: this works only because dcl_prob imports dcl_prob.fit, and so this
    # module, before BlackJAX. BlackJAX computes at import time, which starts
    # the XLA backend, and JAX then rejects jax.distributed.initialize.
    initialize_distributed(
        num_processes=_optional_int("DCL_PROB_NUM_PROCESSES"),
        process_id=_optional_int("DCL_PROB_PROCESS_ID"),
    )
