"""Place examples on devices: AIS chains of different examples never interact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "EXAMPLE_AXIS",
    "fetch",
    "is_coordinator",
    "shard_examples",
    "validate_devices",
]

EXAMPLE_AXIS = "example"


def shard_examples(
    tree: Any, devices: Sequence[jax.Device] | None, *, axis: int = 0
) -> Any:
    """Place every array of ``tree`` on ``devices``, split along the example axis.

    Examples are independent, so the compiled AIS loop then runs each device's share
    of examples in parallel (the computation follows the data's sharding). With
    ``None`` or a single device the tree is returned unchanged.
    """
    if devices is None or len(devices) < 2:
        return tree
    mesh = Mesh(np.asarray(devices), (EXAMPLE_AXIS,))
    spec = PartitionSpec(*([None] * axis), EXAMPLE_AXIS)
    sharding = NamedSharding(mesh, spec)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    # devices of several processes: every process holds the same host values and
    # places its own devices' shards (a multi-process run)
    def place(value: Any) -> jax.Array:
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            implementation = jax.random.key_impl(value)
            data = place(jax.random.key_data(value))
            return jax.random.wrap_key_data(data, impl=implementation)
        host = np.asarray(fetch(value))
        return jax.make_array_from_callback(
            host.shape, sharding, lambda index: host[index]
        )

    return jax.tree.map(place, tree)


def fetch(tree: Any) -> Any:
    """Every array of ``tree`` as a NumPy array on this host.

    Arrays sharded over the devices of several processes (a multi-process run,
    ``jax.distributed.initialize``) are gathered from all of them first, so every
    process gets the whole result.
    """

    def gather(value: Any) -> Any:
        if isinstance(value, jax.Array) and not value.is_fully_addressable:
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(value, tiled=True)
        return value

    return jax.device_get(jax.tree.map(gather, tree))


def is_coordinator() -> bool:
    """Whether this process writes files and shows progress (process 0)."""
    return jax.process_index() == 0


def validate_devices(
    devices: Sequence[jax.Device] | None,
    num_examples: int,
    batch_size: int | None = None,
) -> list[jax.Device] | None:
    """Check that examples (or each batch of them) split evenly over ``devices``."""
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty list of jax devices or None")
    if batch_size is not None and batch_size < num_examples:
        if batch_size % len(devices):
            raise ValueError(
                f"batch_size ({batch_size}) must be a multiple of the number of "
                f"devices ({len(devices)}) to shard each batch across them"
            )
    elif num_examples % len(devices):
        raise ValueError(
            f"the number of examples ({num_examples}) must be a multiple of the "
            f"number of devices ({len(devices)}) to shard examples across them"
        )
    return devices
