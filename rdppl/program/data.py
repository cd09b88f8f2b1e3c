"""Eager checks of data: real, rectangular, and exact enough in the run's dtypes.

Data are validated once, at the public entry point, and cast to the dtypes the run
computes in: floats to ``jnp.result_type(float)`` and integers to JAX's integer
dtype of their width (both 32-bit unless ``jax_enable_x64`` is on). A value that
this cast would change beyond rounding (an integer that wraps around, a float that
overflows to infinity or underflows to zero) is refused, naming the argument and
the first such value.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["validate_data"]


def validate_data(data: Any, *, name: str = "data") -> jax.Array:
    """Real examples with a leading example axis, finite in the run's float dtype.

    Parameters
    ----------
    data
        An array (or nested lists) of examples, the example axis first.
    name
        The argument's name, for the error message.

    Returns
    -------
    jax.Array
        Floating data cast to ``jnp.result_type(float)`` (float32 unless
        ``jax_enable_x64`` is on); integer data cast to JAX's integer dtype of
        their width (int32 for int64 unless ``jax_enable_x64`` is on); boolean
        data unchanged.

    Raises
    ------
    TypeError
        Data that are not real numbers (a string, objects, complex numbers).
    ValueError
        Ragged data, no leading example axis, a value that is not finite in the
        run's float dtype (``1e39`` overflows float32), a nonzero value that
        underflows to 0 in it (``1e-50`` in float32), or an integer outside the
        run's integer dtype (``2**32 + 5`` would wrap around in int32). Rounding
        to the run's precision is not an error.
    """
    if isinstance(data, str | bytes):
        raise TypeError(f"{name} must be numeric, got the string {data!r:.60}")
    try:
        array = np.asarray(data)
    except ValueError as error:
        raise ValueError(
            f"{name} must be a rectangular array (every example of the same shape), "
            f"got ragged data ({error})"
        ) from error
    if array.dtype == np.object_:
        raise TypeError(
            f"{name} must be numeric, got dtype object (ragged lists, None or "
            "Python objects among the values)"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.ndim < 1 or array.shape[0] < 1:
        raise ValueError(
            f"{name} must have a leading example axis with at least one example, got "
            f"shape {array.shape}"
        )
    if array.dtype == np.bool_:
        return jnp.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        return jnp.asarray(_check_integer_range(array, name))
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} must be finite, but {name}[{', '.join(map(str, bad))}] = "
            f"{array[tuple(bad)]}"
        )
    dtype = np.dtype(jnp.result_type(float))
    with np.errstate(over="ignore", under="ignore"):
        cast = array.astype(dtype)
    if not np.all(np.isfinite(cast)):
        bad = np.argwhere(~np.isfinite(cast))[0]
        raise ValueError(
            f"{name} must be finite in the run's float dtype {dtype.name}, but "
            f"{name}[{', '.join(map(str, bad))}] = {array[tuple(bad)]} overflows "
            f"to {cast[tuple(bad)]} (rescale the data, or enable jax_enable_x64 "
            "for float64)"
        )
    # rounding to the run's precision is expected; a nonzero value becoming 0 is not
    vanished = (cast == 0) & (array != 0)
    if np.any(vanished):
        bad = np.argwhere(vanished)[0]
        raise ValueError(
            f"{name} must be representable in the run's float dtype {dtype.name}, "
            f"but {name}[{', '.join(map(str, bad))}] = {array[tuple(bad)]} "
            f"underflows to 0 (its smallest positive value is "
            f"{np.finfo(dtype).smallest_subnormal}; rescale the data, or enable "
            "jax_enable_x64 for float64)"
        )
    return jnp.asarray(cast)


def _check_integer_range(array: np.ndarray, name: str) -> np.ndarray:
    """Integer data cast to the run's integer dtype, refusing values that wrap."""
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(array.dtype))
    if dtype == array.dtype:
        return array
    limits = np.iinfo(dtype)
    outside = (array < limits.min) | (array > limits.max)
    if np.any(outside):
        bad = np.argwhere(outside)[0]
        raise ValueError(
            f"{name} must fit the run's integer dtype {dtype.name} "
            f"(jax_enable_x64 is off), but {name}[{', '.join(map(str, bad))}] = "
            f"{array[tuple(bad)]} lies outside [{limits.min}, {limits.max}] and "
            "would wrap around; enable jax_enable_x64 for 64-bit integers"
        )
    return array.astype(dtype)
