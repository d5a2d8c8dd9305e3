"""Data parallelism: a device mesh, sharded batches, ``pmap`` helpers, several hosts.

Today's JAX way (the JAX training cookbook): build a one-axis mesh called ``data``
over the devices (``jax.make_mesh``, which orders them by the machine's topology),
replicate the training state on every device, and split each batch along its first
axis over ``data``. ``jax.jit`` then compiles :func:`jaxdl.train.train_step` --
unchanged -- into a program where each device computes its part of the batch and the
gradients are averaged across devices. With one device the mesh has one entry and
nothing changes.

Code written per device, with explicit collectives, as ``jax.pmap`` code is:
:func:`jaxdl.train.shard_map_train_step` is the same step under ``jax.shard_map`` on
the mesh (today's form of ``pmap``, which current JAX keeps in maintenance mode), and
:data:`jaxdl.train.pmap_train_step` the step for ``jax.pmap`` itself, whose inputs
:func:`replicate`, :func:`split_for_pmap` and :func:`unreplicate` prepare.

Several machines: call :func:`initialize_distributed` first in every process; then
``jax.devices()`` lists the devices of all processes, the mesh spans them, and each
process feeds its own slice of the global batch (:func:`host_local_batch_to_global`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import ArgumentError, ShapeError

DATA_AXIS = "data"


def make_mesh(devices: int | None = None) -> Mesh:
    """A one-axis ``data`` mesh over the first ``devices`` devices (default: all), in the
    order ``jax.make_mesh`` gives them. The axis is ``Auto``: jit places the arrays inside
    a step where XLA finds best, from the shardings of its inputs."""
    available = jax.devices()
    n = len(available) if devices is None else devices
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(available):
        raise ArgumentError(f"asked for {n!r} devices but {len(available)} are available: {available}")
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=available[:n])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over the ``data`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ArgumentError(f"batch size {batch_size} cannot be split evenly over {n} devices; "
                         f"use a multiple of {n}")


def replicate_state(state: Any, mesh: Mesh) -> Any:
    """Put a training state on every device of ``mesh`` (for ``jit`` data parallelism)."""
    return jax.device_put(state, replicated(mesh))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Split a batch that is on one device (or the host) over the ``data`` axis."""
    jax.tree.map(lambda x: check_batch_size(x.shape[0], mesh), batch)
    return jax.device_put(batch, batch_sharding(mesh))


# --- jax.pmap -----------------------------------------------------------------------------


def replicate(tree: Any, devices=None) -> Any:
    """One copy of ``tree`` per local device, stacked on a new leading axis (for pmap)."""
    devices = devices or jax.local_devices()
    mesh = jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return jax.device_put(jax.tree.map(lambda x: jnp.stack([x] * len(devices)), tree), sharding)


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a replicated tree."""
    return jax.tree.map(lambda x: x[0], tree)


def split_for_pmap(batch: Any, num_devices: int | None = None) -> Any:
    """Reshape each ``(B, ...)`` array to ``(devices, B / devices, ...)`` for pmap."""
    n = num_devices or jax.local_device_count()

    def split(x):
        if x.shape[0] % n:
            raise ShapeError(f"batch of {x.shape[0]} cannot be split over {n} devices")
        return jnp.reshape(x, (n, x.shape[0] // n, *x.shape[1:]))

    return jax.tree.map(split, batch)


# --- several processes ---------------------------------------------------------------------


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Start ``jax.distributed`` so that processes on several hosts form one JAX runtime.

    On TPU pods and SLURM/Kubernetes clusters the arguments are found automatically;
    elsewhere give them (or set ``JAXDL_COORDINATOR``, ``JAXDL_NUM_PROCESSES``,
    ``JAXDL_PROCESS_ID``). On CPU, cross-process collectives go through gloo.
    """
    coordinator_address = coordinator_address or os.environ.get("JAXDL_COORDINATOR")
    if num_processes is None and "JAXDL_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAXDL_NUM_PROCESSES"])
    if process_id is None and "JAXDL_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAXDL_PROCESS_ID"])
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def host_local_batch_to_global(local_batch: Any, mesh: Mesh) -> Any:
    """Assemble each process's slice of the batch into one global array sharded over
    ``data`` (every process calls this with its own ``B / processes`` examples)."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)
