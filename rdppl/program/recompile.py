"""Warn when one program is compiled again and again because of new closures.

JAX compiles rdppl's AIS loop once per program and reuses it for new data, new
arrays in ``model_args`` and new weights of a pytree program
(:func:`rdppl.decoder_model`). A Python function, though, is part of the compiled
program's identity, and the values it closes over are baked in as constants: a
model built anew by a closure over new weights (``def make(W): def program(x):
... W ...``) compiles again on every call (seconds each) and the compiled copies
accumulate in memory. :func:`note_program` counts, per program *structure* (the
functions' code, the traced sites, the example's shape and dtype), how many
closures over *different values* reached an entry point in this process, and warns
(:class:`RecompilationWarning`) once, when that count reaches
:data:`RECOMPILATION_WARNING_THRESHOLD`. A program reused, rebuilt over equal
values, or given new arrays through ``model_args`` never counts more than once.
"""

from __future__ import annotations

import functools
import hashlib
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from rdppl.numerics.diagnostics import RDWarning
from rdppl.program.decorator import Model, ModelStructure

__all__ = [
    "RECOMPILATION_WARNING_THRESHOLD",
    "RecompilationWarning",
    "note_program",
]

#: Closures over different values, of one program structure, after which
#: :class:`RecompilationWarning` is emitted (once per structure and process).
RECOMPILATION_WARNING_THRESHOLD = 3
#: Arrays larger than this are fingerprinted from a strided sample of their bytes.
_FINGERPRINT_BYTES = 2**24

_SEEN: dict[tuple, set[tuple]] = {}
_WARNED: set[tuple] = set()


class RecompilationWarning(RDWarning):
    """The same program was compiled again because it is a new Python function.

    Emitted when :data:`RECOMPILATION_WARNING_THRESHOLD` closures of one program
    (same code, sites and data shape) over different values have been run in one
    process. Write
    the program once, at module level, and pass what changes as arguments
    (``model_args=`` / ``model_kwargs=``; arrays there are traced, so new values do
    not recompile), or wrap a decoder with :func:`rdppl.decoder_model`.
    """


def _is_function(value: Any) -> bool:
    return isinstance(
        value, types.FunctionType | types.MethodType | functools.partial | Model
    )


def _functions(value: Any, found: list[types.FunctionType]) -> None:
    """Append the Python functions compiled code is keyed on (by identity)."""
    if isinstance(value, Model):
        _functions(value.fn, found)
    elif isinstance(value, types.FunctionType):
        found.append(value)
    elif isinstance(value, types.MethodType):
        _functions(value.__func__, found)
    elif isinstance(value, functools.partial):
        _functions(value.func, found)
        _functions((value.args, value.keywords), found)
    else:  # a pytree (an equinox module, a tuple of arguments): its function leaves
        for leaf in jax.tree.leaves(value, is_leaf=_is_function):
            if _is_function(leaf):
                _functions(leaf, found)


def _array_fingerprint(value: Any) -> tuple:
    array = np.asarray(value)
    flat = array.reshape(-1)
    if flat.nbytes > _FINGERPRINT_BYTES:
        flat = flat[:: -(-flat.nbytes // _FINGERPRINT_BYTES)]
    digest = hashlib.blake2b(np.ascontiguousarray(flat).tobytes(), digest_size=16)
    return ("array", array.shape, array.dtype.str, digest.hexdigest())


def _fingerprint(value: Any, depth: int = 0) -> Any:
    """A hashable summary of what a closure bakes into compiled code.

    Equal for closures of the same code over equal values; the identity of an
    object it cannot summarise (so such closures count as different).
    """
    if depth > 8:
        return ("object", id(value))
    inner = functools.partial(_fingerprint, depth=depth + 1)
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return (type(value).__name__, value)
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        return _array_fingerprint(value)
    if isinstance(value, types.FunctionType):
        cells = []
        for cell in value.__closure__ or ():
            try:
                cells.append(inner(cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append(None)
        return (
            value.__code__,
            tuple(cells),
            inner(value.__defaults__),
            inner(value.__kwdefaults__),
        )
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(map(inner, value)))
    if isinstance(value, dict):
        return ("dict", tuple((key, inner(item)) for key, item in value.items()))
    if isinstance(value, types.MethodType):
        return ("method", inner(value.__func__), inner(value.__self__))
    if isinstance(value, functools.partial):
        return ("partial", inner(value.func), inner(value.args), inner(value.keywords))
    if isinstance(value, types.ModuleType | type):
        return ("object", id(value))
    leaves, treedef = jax.tree.flatten(value)
    if len(leaves) == 1 and leaves[0] is value:  # not a pytree
        return ("object", id(value))
    return ("pytree", treedef, tuple(map(inner, leaves)))


def note_program(
    model: Model | Callable[..., Any],
    structure: ModelStructure,
    example: Any,
    *,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    distortion: Any = None,
    stacklevel: int = 2,
) -> None:
    """Count a program about to be compiled; warn if closures keep recompiling it.

    Parameters
    ----------
    model
        The program as given to the entry point.
    structure
        Its traced structure.
    example
        One example (its shape and dtype are part of the compiled program).
    model_args, model_kwargs, distortion
        As given to the entry point (functions among them count too; arrays do
        not, they are traced).
    stacklevel
        Passed to :func:`warnings.warn`, to point at the caller's line.

    Warns
    -----
    RecompilationWarning
        At the :data:`RECOMPILATION_WARNING_THRESHOLD`-th closure over different
        values of the same structure, once per structure.
    """
    found: list[types.FunctionType] = []
    _functions((model, tuple(model_args), dict(model_kwargs or {})), found)
    if callable(distortion):
        _functions(distortion, found)
    if not found:
        return
    key = (
        tuple(function.__code__ for function in found),
        structure,
        tuple(np.shape(example)),
        str(getattr(example, "dtype", type(example).__name__)),
    )
    if key in _WARNED:
        return
    seen = _SEEN.setdefault(key, set())
    seen.add(tuple(map(_fingerprint, found)))
    if len(seen) < RECOMPILATION_WARNING_THRESHOLD:
        return
    _WARNED.add(key)
    changing = [
        function.__qualname__
        for index, function in enumerate(found)
        if len({prints[index] for prints in seen}) > 1
    ]
    warnings.warn(
        f"the program {found[0].__qualname__!r} has been compiled {len(seen)} times "
        f"in this process because each call passed a new Python function over new "
        f"values ({', '.join(map(repr, changing))}: a closure built anew, e.g. over "
        "new weights); each compilation takes seconds and stays in "
        "memory. Define the program once and pass what changes as arguments, "
        "model_args=(weights, ...) (arrays there are traced, so new values reuse "
        "the compiled program), or wrap a decoder with rdppl.decoder_model",
        RecompilationWarning,
        stacklevel=stacklevel + 1,
    )
