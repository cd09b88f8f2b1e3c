"""The steps every AIS entry point shares after validating its arguments.

:func:`check_memory` refuses a run that cannot fit before anything is allocated,
:func:`holding` keeps a call's checkpoint (and its lock) for the call's duration and
releases it however the call ends, and :func:`finished_tree` assembles the result and
warns about unreliable parts at the user's line. Used by :mod:`rdppl.rd`,
:mod:`rdppl.bdmc` and :mod:`rdppl.likelihood`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import xarray as xr

from rdppl import results
from rdppl.numerics.diagnostics import check_result
from rdppl.program.decorator import ModelStructure
from rdppl.sampler.checkpoint import CheckpointStore
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.mappings import release_compiled_programs
from rdppl.sampler.memory import check_run_memory
from rdppl.sampler.runner import Execution

__all__ = ["check_memory", "finished_tree", "holding"]


def check_memory(
    entry: str,
    structure: ModelStructure,
    kernel: MCMCKernel,
    execution: Execution,
    *,
    num_chains: int,
    num_examples: int,
    num_temperatures: int,
    temperatures_argument: str = "schedule",
    num_captures: int = 0,
    num_curve_points: int | None = None,
) -> None:
    """:func:`rdppl.sampler.memory.check_run_memory` with the execution's settings.

    Also releases compiled programs when the process nears the system's limit on
    memory mappings (:func:`rdppl.sampler.mappings.release_compiled_programs`).
    """
    release_compiled_programs()
    check_run_memory(
        entry,
        structure,
        kernel,
        num_chains=num_chains,
        num_examples=num_examples,
        num_temperatures=num_temperatures,
        temperatures_argument=temperatures_argument,
        batch_size=execution.batch_size,
        chunk_size=execution.chunk_size,
        devices=execution.devices,
        num_captures=num_captures,
        num_curve_points=num_curve_points,
    )


@contextlib.contextmanager
def holding(store: CheckpointStore | None) -> Iterator[CheckpointStore | None]:
    """Hold ``store`` (``None``: no checkpoint) and release its lock at the end."""
    try:
        yield store
    finally:
        if store is not None:
            store.release()


def finished_tree(
    groups: Mapping[str, xr.Dataset], attrs: Mapping[str, Any], name: str
) -> xr.DataTree:
    """The result tree, checked: warnings point at the entry point's caller."""
    tree = results.make_tree(groups, attrs=attrs, name=name)
    # stacklevel: check_result <- finished_tree <- entry point <- the user's line
    check_result(tree, stacklevel=4)
    return tree
