"""Keep a long process below the kernel's limit on memory mappings.

Every program XLA compiles for the CPU lives in a dozen or more memory mappings of
its own (about 17 for a small jitted function, several hundred for one
:func:`rdppl.rd_curve` call), and JAX keeps compiled programs in its in-memory
caches (up to 8192 entries per cache) for as long as the Python objects they are
keyed on live. A process that compiles a few thousand programs (a sweep over
models built as new closures, a test suite) reaches Linux's ``vm.max_map_count``
(65530 by default) and XLA's compiler aborts the whole process in the middle of a
compilation. :func:`release_compiled_programs` clears JAX's and Equinox's caches
when the process is close to that limit, so programs compile again on their next
use instead. rdppl's entry points call it before they compile anything.
"""

from __future__ import annotations

import os
import sys
import warnings

import equinox as eqx
import jax

from rdppl.numerics.diagnostics import RDWarning

__all__ = [
    "DEFAULT_MAPPINGS_FRACTION",
    "memory_mappings",
    "release_compiled_programs",
]

#: Fraction of ``vm.max_map_count`` above which compiled programs are released.
DEFAULT_MAPPINGS_FRACTION = 0.5
_MAPS = "/proc/self/maps"
_MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"


def memory_mappings() -> tuple[int, int] | None:
    """Count this process's memory mappings; read the kernel's limit on them.

    Returns
    -------
    tuple of int or None
        ``(in_use, limit)``; ``None`` where the system does not say (not Linux).
    """
    try:
        with open(_MAX_MAP_COUNT) as file:
            limit = int(file.read())
        with open(_MAPS, "rb") as file:
            in_use = sum(1 for _ in file)
    except (OSError, ValueError):
        return None
    return in_use, limit


def release_compiled_programs(
    fraction: float = DEFAULT_MAPPINGS_FRACTION, *, warn: bool = True
) -> bool:
    """Clear JAX's in-memory compilation caches when mappings near the limit.

    Parameters
    ----------
    fraction
        Clear when the process uses more than this fraction of
        ``vm.max_map_count``, in (0, 1].
    warn
        Emit an :class:`rdppl.RDWarning` saying so when the caches are cleared.

    Returns
    -------
    bool
        Whether the caches were cleared.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    counts = memory_mappings()
    if counts is None:
        return False
    in_use, limit = counts
    # mappings that clearing did not give back (held elsewhere) raise the bar, so
    # that every call does not clear, and compile again, in vain
    floor = _HELD_ELSEWHERE[0]
    if in_use < floor:  # some were given back since: the fraction alone decides
        floor = _HELD_ELSEWHERE[0] = 0
    if in_use <= max(fraction * limit, floor + fraction * (limit - floor)):
        return False
    eqx.clear_caches()
    jax.clear_caches()
    after = memory_mappings()
    _HELD_ELSEWHERE[0] = after[0] if after is not None else 0
    if warn:
        warnings.warn(
            f"this process held {in_use} memory mappings of the system's limit "
            f"{limit} (vm.max_map_count), mostly compiled programs kept by JAX; rdppl "
            "cleared JAX's in-memory compilation caches so that the next compilation "
            "cannot abort the process. Programs compile again on their next use. To "
            "compile less, reuse one model function and pass what changes through "
            "model_args= (see RecompilationWarning)",
            RDWarning,
            stacklevel=_user_stacklevel(),
        )
    return True


# the mappings still held after the last clearing (not JAX's caches)
_HELD_ELSEWHERE = [0]


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside rdppl (the user's line)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
