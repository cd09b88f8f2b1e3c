"""Place examples on devices: AIS chains of different examples never interact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["EXAMPLE_AXIS", "shard_examples", "validate_devices"]

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
    return jax.device_put(tree, NamedSharding(mesh, spec))


def validate_devices(
    devices: Sequence[jax.Device] | None, num_examples: int
) -> list[jax.Device] | None:
    """Check that examples split evenly over ``devices``."""
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty list of jax devices or None")
    if num_examples % len(devices):
        raise ValueError(
            f"the number of examples ({num_examples}) must be a multiple of the "
            f"number of devices ({len(devices)}) to shard examples across them"
        )
    return devices
