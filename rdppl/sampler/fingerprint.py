"""The fingerprint of a checkpointed call: everything that determines its result.

A checkpoint (:mod:`rdppl.sampler.checkpoint`) stores the fingerprint of the call that
wrote it; a call resumes from it only if its own fingerprint is the same. The
fingerprint is text, comparable entry by entry and the same in every process of one
environment:

- the model: its traced structure and, for each of its functions (log prior and
  distortion, starting draw, site values, simulation), the jaxpr's text and the
  content hash of every array it closes over (decoder weights, ``model_args``,
  arrays of a program that is a pytree), plus its values at two fixed points;
- arrays (data, schedules) by content hash with dtype and shape;
- functions (a BlackJAX kernel's ``step`` and ``init``) by module and qualified name,
  a hash of their code, and the values they close over or take by default;
- dataclasses (kernels) by class and fields, other callable objects by class and
  attributes, wrapped functions (``jax.jit``) by what they wrap; the rest by
  ``repr`` without memory addresses.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FINGERPRINT_VERSION", "describe", "fingerprint"]

# Bumped whenever the fingerprint changes what it detects, or a checkpoint's content
# changes: checkpoints of an earlier version are refused (their fingerprint may match
# a call that differs). 3: the carry of rdppl's HMC holds the chains' evaluation;
# 4: the resampling decisions are packed bits.
FINGERPRINT_VERSION = 4

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 6


def digest(*parts: bytes) -> str:
    """A short SHA-256 of the parts (each prefixed with its length)."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def _is_key(value: Any) -> bool:
    return isinstance(value, jax.Array) and jax.dtypes.issubdtype(
        value.dtype, jax.dtypes.prng_key
    )


def array_digest(value: Any) -> str:
    """An array's content hash with its dtype and shape (typed keys by key data)."""
    if _is_key(value):
        value = jax.random.key_data(value)
    array = np.asarray(value)
    hashed = digest(
        str(array.dtype).encode(),
        str(array.shape).encode(),
        np.ascontiguousarray(array).tobytes(),
    )
    return f"sha256:{hashed} {array.dtype}{list(array.shape)}"


def _qualified(value: Any) -> str:
    module = getattr(value, "__module__", None) or "?"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    return f"{module}.{name}" if name else _ADDRESS.sub("", repr(value))


def _code_digest(code: types.CodeType) -> str:
    """The code's bytecode, names and constants (nested code included)."""
    constants = []
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            constants.append(_code_digest(constant))
        elif isinstance(constant, frozenset):  # iteration order varies by process
            constants.append(repr(sorted(repr(c) for c in constant)))
        else:
            constants.append(repr(constant))
    return digest(
        code.co_code,
        repr(code.co_names).encode(),
        repr(code.co_varnames).encode(),
        repr(constants).encode(),
    )


def _describe_function(function: types.FunctionType, depth: int) -> str:
    parts = [f"code={_code_digest(function.__code__)}"]
    if function.__defaults__:
        parts.append(f"defaults={describe(function.__defaults__, depth + 1)}")
    if function.__kwdefaults__:
        parts.append(f"kwdefaults={describe(function.__kwdefaults__, depth + 1)}")
    if function.__closure__:
        cells = []
        for name, cell in zip(
            function.__code__.co_freevars, function.__closure__, strict=True
        ):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                cells.append(f"{name}=<empty>")
                continue
            cells.append(f"{name}={describe(contents, depth + 1)}")
        parts.append("closure={" + ", ".join(cells) + "}")
    return f"<function {_qualified(function)} {' '.join(parts)}>"


def describe(value: Any, depth: int = 0) -> str:
    """A stable text for a setting: the same value gives the same text in any process.

    Arrays by content hash, functions by identity (module and qualified name), code
    and closure, wrapped functions (``jax.jit``) by what they wrap, dataclasses by
    class and fields, other callable objects by class and attributes, containers
    element by element (sets sorted), anything else by ``repr`` without memory
    addresses.

    Parameters
    ----------
    value
        A setting of a call (an array, a kernel, a function, a container...).
    depth
        The nesting level reached (deeper values are described as ``...``).

    Returns
    -------
    str
        The description.
    """
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, np.ndarray | jax.Array | np.generic) and np.ndim(value) > 0:
        return array_digest(value)
    if _is_key(value):
        return str(np.asarray(jax.random.key_data(value)).tolist())
    if isinstance(value, tuple | list):
        inner = ", ".join(describe(v, depth + 1) for v in value)
        fields = getattr(value, "_fields", None)
        if fields is not None:  # a NamedTuple: its class and field names
            inner = ", ".join(
                f"{name}={describe(v, depth + 1)}"
                for name, v in zip(fields, value, strict=True)
            )
            return f"{_qualified(type(value))}({inner})"
        return f"[{inner}]"
    if isinstance(value, set | frozenset):  # iteration order varies by process
        return "{" + ", ".join(sorted(describe(v, depth + 1) for v in value)) + "}"
    if isinstance(value, Mapping):
        items = sorted(
            (describe(k, depth + 1), describe(v, depth + 1)) for k, v in value.items()
        )
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{field.name}={describe(getattr(value, field.name, None), depth + 1)}"
            for field in dataclasses.fields(value)
        )
        return f"{_qualified(type(value))}({inner})"
    if isinstance(value, functools.partial):
        return (
            f"partial({describe(value.func, depth + 1)}, "
            f"{describe(value.args, depth + 1)}, {describe(value.keywords, depth + 1)})"
        )
    if isinstance(value, types.MethodType):
        return (
            f"<method {describe(value.__func__, depth + 1)} of "
            f"{describe(value.__self__, depth + 1)}>"
        )
    if isinstance(value, types.FunctionType):
        return _describe_function(value, depth)
    if callable(value) and not isinstance(value, np.ndarray | jax.Array):
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None and wrapped is not value:  # jax.jit, functools.wraps
            return f"<wrapped {describe(wrapped, depth + 1)}>"
        attributes = getattr(value, "__dict__", None)
        if attributes and not isinstance(value, type):  # an object with __call__
            return f"<callable {_qualified(type(value))} {describe(attributes, depth)}>"
        return f"<callable {_qualified(value)}>"
    if isinstance(value, np.ndarray | jax.Array | np.generic):  # 0-d
        return f"{np.asarray(value).dtype}({np.asarray(value).item()!r})"
    return _ADDRESS.sub("", repr(value))


def _closed_jaxpr_parts(name: str, function: Any, *arguments: Any) -> list[bytes]:
    """A function's jaxpr text and the content hash of every constant it captures."""
    try:
        closed = jax.make_jaxpr(function)(*arguments)
    except Exception as error:  # noqa: BLE001 - e.g. a model that cannot simulate
        return [f"{name}: cannot be traced ({type(error).__name__})".encode()]
    return [
        name.encode(),
        _ADDRESS.sub("", str(closed.jaxpr)).encode(),
        *(array_digest(constant).encode() for constant in closed.consts),
    ]


def model_digest(target: Any, data: Any) -> str:
    """The traced program: structure, computations, captured arrays, fixed values."""
    example = jnp.asarray(data)[0]
    dim = int(target.structure.num_latent_dimensions)
    dtype = jnp.result_type(float)
    points = jnp.stack(
        [
            jnp.zeros(dim, dtype),
            jnp.asarray(np.random.default_rng(0).normal(size=dim) * 0.7, dtype),
        ]
    )
    key = jax.random.key(0)
    parts = [_ADDRESS.sub("", repr(target.structure)).encode()]
    parts += _closed_jaxpr_parts(
        "log_terms", target.log_prior_and_distortion, points[1], example
    )
    parts += _closed_jaxpr_parts("initial", target.sample_initial, key, example)
    parts += _closed_jaxpr_parts("constrain", target.site_values, points[1], example)
    if target.simulator is not None:
        parts += _closed_jaxpr_parts(
            "simulate", target.simulate, key, jnp.asarray(1.0, dtype), example
        )
    values = jax.vmap(lambda u: target.log_prior_and_distortion(u, example))(points)
    parts += [np.asarray(value).tobytes() for value in values]
    return "sha256:" + digest(*parts)


def fingerprint(
    function: str, target: Any, data: Any, settings: Mapping[str, Any]
) -> dict[str, str]:
    """Everything that determines a call's result, as comparable text.

    Parameters
    ----------
    function
        The public function's name.
    target
        The traced model (:class:`rdppl.TracedModel`).
    data
        The examples the runs use (or a template for BDMC).
    settings
        The call's other result-determining arguments, already validated.

    Returns
    -------
    dict of str to str
        One entry per named part; two calls may share a checkpoint only if every
        entry is equal.
    """
    from rdppl.results.core import versions

    entries = {
        "fingerprint_version": str(FINGERPRINT_VERSION),
        "function": function,
        "model": model_digest(target, data),
        "data": array_digest(data),
        "precision": str(jnp.result_type(float)),
        "versions": json.dumps(versions(), sort_keys=True),
    }
    entries.update({name: describe(value) for name, value in settings.items()})
    return entries
