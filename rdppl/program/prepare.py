"""The model and the data, checked once at every entry point before anything runs.

:func:`prepare_model` validates the examples (:func:`rdppl.program.data.validate_data`),
traces the program on the first one (:func:`rdppl.program.tracing.trace_model`) and
checks that every example lies in the observed site's support
(:func:`validate_observed_support`). Nothing below the entry points validates again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from rdppl.program.calls import as_program_parts, eager_trace, observed_argument
from rdppl.program.compiled import Program
from rdppl.program.data import validate_data
from rdppl.program.decorator import Distortion, Model, TracedModel
from rdppl.program.sites import check_observed_support
from rdppl.program.tracing import trace_model

__all__ = ["prepare_model", "validate_observed_support"]


def prepare_model(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    distortion: Distortion,
    observed: str | None,
    reconstruction: str | None,
    model_args: Sequence[Any],
    model_kwargs: Mapping[str, Any] | None,
) -> tuple[TracedModel, jax.Array]:
    """Validate the data, then trace the model on its first example."""
    data = validate_data(data)
    target = trace_model(
        model,
        data[0],
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=tuple(model_args),
        model_kwargs=model_kwargs,
    )
    validate_observed_support(
        model,
        data,
        observed=target.structure.observed,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    return target, data


def validate_observed_support(
    model: Model | Callable[..., Any],
    data: jax.Array,
    *,
    observed: str,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Check that every example lies in the support of the observed site.

    The program is traced eagerly on the first example (twice, with different
    seeds); the observed distribution's ``support.check`` then runs on all examples
    at once. A support that depends on the latents (``Uniform(0, z)``) differs
    between the traces and is not checked.

    Parameters
    ----------
    model
        The program, already traced and checked by :func:`rdppl.trace_model`.
    data
        The validated examples, the example axis first.
    observed
        The observed site's name.
    model_args, model_kwargs
        Extra arguments of the program.

    Raises
    ------
    ValueError
        Naming the observed site, the first example outside its support, the
        example's value and the support.
    """
    fn, observed, _ = as_program_parts(model, observed, None)
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    argument = observed_argument(fn, observed, model_args, model_kwargs)
    program = Program(fn, observed, argument, None, "nll", (), model_args, model_kwargs)
    conditioned, kwargs = program.bind(data[0])
    fns = [
        eager_trace(conditioned, model_args, kwargs, seed)[observed]["fn"]
        for seed in (0, 1)
    ]
    check_observed_support(fns, observed, data)
