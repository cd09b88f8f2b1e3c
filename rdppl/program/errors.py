"""Errors of the user's program, explained: what rdppl was doing, where, and a fix.

:func:`user_code` wraps every call of the user's program; a JAX tracer error or a
shape error raised inside it becomes a :class:`ModelTraceError` naming the last site
reached, the line of user code and how to fix the program.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from typing import Any

import equinox as eqx
import jax
from numpyro.primitives import Messenger

__all__ = ["ModelTraceError", "user_code"]


class ModelTraceError(TypeError, ValueError):
    """The program failed while rdppl ran or traced it for one example.

    Raised from JAX's tracer errors (:class:`jax.errors.TracerBoolConversionError`,
    :class:`~jax.errors.ConcretizationTypeError`,
    :class:`~jax.errors.TracerArrayConversionError`,
    :class:`~jax.errors.TracerIntegerConversionError`) and from the ``TypeError`` or
    ``ValueError`` of a shape mismatch inside the program, with a line that says what
    rdppl was doing, after which site, and how to fix the program. The original
    error is chained as ``__cause__``. It subclasses both ``TypeError`` (the type of
    JAX's tracer errors) and ``ValueError`` (shape errors), so ``except TypeError``
    and ``except ValueError`` both still catch it.
    """


_HINT_CONTROL_FLOW = (
    "the program is traced by JAX, so a latent (or the data) is an abstract value: "
    "a Python `if`, `while`, `bool()`, `float()` or `.item()` on it fails; use "
    "jnp.where or jax.lax.cond instead"
)
_HINT_NUMPY = (
    "the program is traced by JAX: use jax.numpy (jnp) rather than NumPy on latents "
    "and data (np.asarray of a traced value fails)"
)
_HINT_STATIC = (
    "a traced value is used where Python needs a concrete int (a shape, an index, a "
    "range): pass shapes and sizes as static Python ints in model_args or "
    "model_kwargs, not as arrays (arrays are traced)"
)


def _hint(error: BaseException, example_shape: tuple[int, ...] | None) -> str:
    """How to fix the program, from the type and text of JAX's error."""
    if isinstance(error, jax.errors.TracerIntegerConversionError) or (
        "Shapes must be 1D sequences of concrete values" in str(error)
    ):
        return _HINT_STATIC
    if isinstance(error, jax.errors.TracerArrayConversionError):
        return _HINT_NUMPY
    if isinstance(error, jax.errors.ConcretizationTypeError):
        return _HINT_CONTROL_FLOW
    if isinstance(error, jax.dtypes.TypePromotionError):
        return (
            "mixed dtypes with jax_numpy_dtype_promotion='strict': cast explicitly "
            "(e.g. x.astype(jnp.float32)) inside the program or in the data"
        )
    shape = "" if example_shape is None else f" (one example has shape {example_shape})"
    text = str(error).lower()
    if any(word in text for word in ("shape", "broadcast", "rank", "dimension")):
        return (
            "check the shapes: write the model for ONE example" + shape + "; rdppl "
            "vmaps the program over examples and chains, so it must not have a "
            "batch axis"
        )
    return (
        "the error comes from the program (or a NumPyro distribution it builds); "
        "call it by hand on one example" + shape + " to debug it"
    )


class _SiteNames(Messenger):
    """Record the names of the sites the program has run (no values kept)."""

    def __enter__(self) -> list[str]:
        super().__enter__()
        self.names: list[str] = []
        return self.names

    def postprocess_message(self, msg: Any) -> None:
        if msg.get("type") in ("sample", "deterministic") and "name" in msg:
            self.names.append(msg["name"])


def _library_directories() -> tuple[str, ...]:
    import blackjax
    import numpyro

    modules = (jax, numpyro, eqx, blackjax)
    # the rdppl package: this file is rdppl/program/errors.py
    rdppl_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (
        rdppl_dir + os.sep,
        *(os.path.dirname(m.__file__ or "") + os.sep for m in modules),
        os.path.abspath(contextlib.__file__),
    )


def _where(error: BaseException, sites: list[str]) -> str:
    """The last line of user code in the traceback and the last site reached."""
    libraries = _library_directories()
    user_frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not os.path.abspath(frame.filename).startswith(libraries)
    ]
    parts = []
    if user_frames:
        frame = user_frames[-1]
        parts.append(
            f"at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
        )
    parts.append(
        f"the last site reached was {sites[-1]!r}" if sites else "before its first site"
    )
    return ", ".join(parts)


@contextlib.contextmanager
def user_code(doing: str, example_shape: tuple[int, ...] | None) -> Iterator[None]:
    """Re-raise errors of the user's program with what rdppl was doing and a fix."""
    with _SiteNames() as sites:
        try:
            yield
        except ModelTraceError:
            raise
        except (TypeError, ValueError, IndexError) as error:
            where = _where(error, sites)
            first_line = (str(error).strip().splitlines() or [""])[0]
            raise ModelTraceError(
                f"the model failed while rdppl was {doing}, {where}: "
                f"{type(error).__name__}: {first_line}\nHow to fix: "
                f"{_hint(error, example_shape)}"
            ) from error
