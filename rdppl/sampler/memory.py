"""Refuse a run whose chains cannot fit in memory, before anything is allocated.

A run holds, for every example of a batch and every chain, the latent position, the
momentum, the gradient and a proposal, and evaluates the observation's density once
per chain; it records a few numbers per temperature and example, and keeps the
chains at each captured temperature. :func:`check_run_memory` adds these up (a lower
bound: the program's own intermediates come on top) and raises
:class:`InsufficientMemoryError`, naming the arguments to lower, when the total
exceeds the memory available: the accelerator's free memory where JAX reports it
(``Device.memory_stats``), else the host's available RAM (``/proc/meminfo``,
``os.sysconf``, the cgroup's limit).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rdppl.program.decorator import ModelStructure
from rdppl.sampler.kernels import MCMCKernel

__all__ = [
    "InsufficientMemoryError",
    "check_run_memory",
    "device_memory",
    "host_memory",
]

#: Arrays of ``(chains, latent dimension)`` a transition holds at once (position,
#: momentum, gradient, proposal): a lower bound for every kernel.
CHAIN_ARRAYS = 4
#: Numbers recorded per temperature and example (the fields of ``AISInfo``, the
#: step size and the resampling decision).
RECORDS_PER_TEMPERATURE = 14
#: Steps per compiled segment when ``chunk_size`` is not given (rdppl.sampler.runner).
DEFAULT_CHUNK_SIZE = 256


class InsufficientMemoryError(MemoryError, ValueError):
    """A run's chains and records need more memory than is available.

    Raised before the run starts, with the estimate, the memory available and the
    arguments that reduce it (``num_chains``, ``batch_size``, the number of
    temperatures, the captured temperatures). It subclasses both ``MemoryError`` and
    ``ValueError`` (an invalid combination of arguments).
    """


class _Part(NamedTuple):
    what: str
    size: int
    arguments: tuple[str, ...]
    on_device: bool


def host_memory() -> int | None:
    """Bytes of RAM available to this process (``None``: unknown)."""
    available = None
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            return None
    try:  # a container's limit (cgroup v2) may be lower than the machine's RAM
        with open("/sys/fs/cgroup/memory.max") as file:
            limit = file.read().strip()
        with open("/sys/fs/cgroup/memory.current") as file:
            used = int(file.read().strip())
        used -= _reclaimable_cache()  # the page cache the kernel frees on demand
        if limit != "max":
            available = min(available, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return available


def _reclaimable_cache() -> int:
    """Bytes of a cgroup's inactive page cache (counted in its usage, reclaimable)."""
    try:
        with open("/sys/fs/cgroup/memory.stat") as file:
            for line in file:
                name, _, value = line.partition(" ")
                if name == "inactive_file":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def device_memory(device: jax.Device) -> int | None:
    """Free bytes of an accelerator's memory (``None``: not reported, e.g. a CPU)."""
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def _size(number: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if number < 1024 or unit == "PiB":
            return f"{number:.1f} {unit}" if unit != "B" else f"{int(number)} B"
        number /= 1024
    raise AssertionError("unreachable")


def check_run_memory(
    entry: str,
    structure: ModelStructure,
    kernel: MCMCKernel,
    *,
    num_chains: int,
    num_examples: int,
    num_temperatures: int,
    temperatures_argument: str,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    num_captures: int = 0,
    num_curve_points: int | None = None,
) -> None:
    """Raise if a run's chains, records and captures cannot fit in memory.

    Parameters
    ----------
    entry
        The public function, for the message (``"rd_curve"``).
    structure, kernel
        The traced model's structure and the MCMC kernel.
    num_chains, num_examples, num_temperatures
        The run's size.
    temperatures_argument
        The argument that sets the number of temperatures (``"schedule"``).
    batch_size, chunk_size, devices
        As given to the entry point (validated).
    num_captures
        Temperatures at which the chains are kept (``posterior_betas``).
    num_curve_points
        Temperatures the records are kept at (``None``: every one).

    Raises
    ------
    InsufficientMemoryError
        With the estimate, the memory available and the arguments to lower.
    """
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    dim = structure.num_latent_dimensions
    observed = math.prod(structure.observed_shape)
    matrix = math.prod(kernel.inverse_mass_matrix_shape(dim))
    local = [
        d
        for d in (devices or jax.local_devices())
        if d.process_index == jax.process_index()
    ] or jax.local_devices()
    batch = min(batch_size or num_examples, num_examples)
    per_device = -(-batch // max(len(devices or ()), 1))
    steps = min(chunk_size or DEFAULT_CHUNK_SIZE, num_temperatures)
    batch_arguments = ("batch_size",) if per_device > 1 else ()
    kept_all = num_curve_points is None or num_curve_points >= num_temperatures
    points = num_temperatures if kept_all else num_curve_points
    parts = [
        _Part(
            f"the chains ({num_chains} chains x {per_device} examples at once x "
            f"({CHAIN_ARRAYS} x {dim} latent + {observed} observed + 1) values)",
            num_chains * per_device * (CHAIN_ARRAYS * dim + observed + 1) * itemsize,
            ("num_chains", *batch_arguments),
            True,
        ),
        _Part(
            f"the records of a compiled segment ({steps} temperatures x "
            f"{per_device} examples)",
            steps * per_device * (RECORDS_PER_TEMPERATURE + matrix) * itemsize,
            ("chunk_size", *batch_arguments),
            True,
        ),
        _Part(
            f"the records ({points} temperatures x {num_examples} examples)",
            points * num_examples * (RECORDS_PER_TEMPERATURE + matrix) * itemsize,
            (temperatures_argument, "num_curve_points")
            if kept_all
            else ("num_curve_points",),
            False,
        ),
        _Part(
            f"the resampling decisions ({num_temperatures} temperatures x "
            f"{num_examples} examples, one bit each)",
            -(-num_temperatures // 8) * num_examples,
            (temperatures_argument,),
            False,
        ),
        _Part(
            f"the captured chains ({num_captures} temperatures x {num_examples} "
            f"examples x {num_chains} chains x {dim} latent values)",
            num_captures * num_examples * num_chains * (dim + 1) * itemsize,
            ("posterior_betas", "num_chains"),
            False,
        ),
    ]
    now = {
        "num_chains": f"now {num_chains}",
        "batch_size": f"now {batch_size}"
        if batch_size
        else f"now None: all {num_examples} examples at once",
        "chunk_size": f"now {chunk_size or DEFAULT_CHUNK_SIZE}",
        temperatures_argument: f"now {num_temperatures} temperatures",
        "posterior_betas": f"now {num_captures} temperatures",
        "num_curve_points": f"now {num_curve_points}"
        + (": a record at every temperature" if kept_all else ""),
    }
    device_free = [device_memory(d) for d in local]
    if all(free is not None for free in device_free):
        on_device = [p for p in parts if p.on_device]
        _compare(entry, on_device, min(device_free), f"free on {local[0]}", now)
        on_host = [p for p in parts if not p.on_device]
        _compare(entry, on_host, host_memory(), "available in host RAM", now)
    else:  # the chains live in host memory
        _compare(entry, parts, host_memory(), "available in host RAM", now)


def _compare(
    entry: str,
    parts: list[_Part],
    available: int | None,
    where: str,
    now: dict[str, str],
) -> None:
    needed = sum(part.size for part in parts)
    if available is None or needed <= available:
        return
    ranked = sorted(parts, key=lambda part: part.size, reverse=True)
    arguments = list(
        dict.fromkeys(
            name
            for part in ranked
            if part.size >= 0.1 * needed
            for name in part.arguments
        )
    )
    details = "; ".join(
        f"{_size(part.size)} for {part.what}" for part in ranked if part.size
    )
    raise InsufficientMemoryError(
        f"{entry} needs at least {_size(needed)} of memory ({details}), but only "
        f"{_size(available)} is {where}; lower "
        + " or ".join(f"{name} ({now[name]})" for name in arguments)
    )
