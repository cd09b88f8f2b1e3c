"""Calling the user's program: its arguments, its observed argument, one eager run.

The helpers every entry into the program shares: :func:`as_program_parts` (a
:class:`~rdppl.Model` or a plain program with ``observed=``),
:func:`check_model_arguments` and :func:`observed_argument` (which parameter receives
each example), and :func:`eager_trace` (one run under NumPyro's ``trace`` and
``seed`` handlers, its errors explained by :func:`rdppl.program.errors.user_code`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
from numpyro import handlers

from rdppl.program.decorator import Model
from rdppl.program.errors import user_code

__all__ = [
    "as_program_parts",
    "check_model_arguments",
    "eager_trace",
    "observed_argument",
]


def check_model_arguments(model_args: Any, model_kwargs: Any) -> None:
    """``model_args`` a tuple or list, ``model_kwargs`` a mapping with string keys."""
    if not isinstance(model_args, tuple | list):
        raise TypeError(
            "model_args must be a tuple of the program's extra positional "
            f"arguments, got {type(model_args).__name__} {model_args!r:.60}"
        )
    if model_kwargs is not None and not (
        isinstance(model_kwargs, Mapping)
        and all(isinstance(key, str) for key in model_kwargs)
    ):
        raise TypeError(
            "model_kwargs must be a dict of the program's keyword arguments, got "
            f"{type(model_kwargs).__name__} {model_kwargs!r:.60}"
        )


def observed_argument(
    fn: Callable[..., Any], observed: str, model_args: tuple, model_kwargs: Mapping
) -> str | None:
    """The program's parameter that receives each example, if it has one."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind_partial(*model_args, **model_kwargs)
    except TypeError as error:
        raise TypeError(
            f"model_args {tuple(model_args)!r:.60} and model_kwargs "
            f"{dict(model_kwargs)!r:.60} do not fit the program's signature "
            f"{signature} ({error})"
        ) from error
    parameters = signature.parameters
    if observed not in parameters:
        return None
    if observed in model_kwargs:
        raise ValueError(
            f"model_kwargs must not contain {observed!r}: rdppl passes each example "
            f"as the program's argument {observed!r}"
        )
    bound = signature.bind_partial(*model_args)
    if observed in bound.arguments:
        raise ValueError(
            f"model_args fill the program's argument {observed!r}, which receives "
            "each example; pass the other arguments by keyword (model_kwargs) or "
            "put the observed argument after them"
        )
    return observed


def as_program_parts(
    model: Model | Callable[..., Any],
    observed: str | None,
    reconstruction: str | None,
) -> tuple[Callable[..., Any], str, str | None]:
    """The program's function and site names, from a Model or a plain program."""
    if isinstance(model, Model):
        return (
            model.fn,
            observed or model.observed,
            reconstruction or model.reconstruction,
        )
    if not callable(model):
        raise TypeError(f"model must be a NumPyro program, got {model!r}")
    if observed is None:
        raise ValueError(
            "a plain NumPyro program needs observed='site name' (or decorate it "
            "with @rdppl.model(observed=...))"
        )
    return model, observed, reconstruction


def eager_trace(
    program: Callable,
    model_args: tuple,
    kwargs: dict,
    seed: int,
    doing: str = "running the program eagerly on the first example",
    example_shape: tuple[int, ...] | None = None,
) -> Mapping[str, Any]:
    """Run the program once with a fixed seed and return its NumPyro trace."""
    try:
        with user_code(doing, example_shape):
            return handlers.trace(
                handlers.seed(program, jax.random.key(seed))
            ).get_trace(*model_args, **kwargs)
    except AssertionError as error:
        if "unique names" in str(error):
            raise ValueError(
                f"two sites of the model share a name ({error}); a "
                "numpyro.deterministic must not be named like a sample site"
            ) from error
        raise
