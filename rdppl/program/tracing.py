"""Trace a NumPyro program into a :class:`~rdppl.program.decorator.TracedModel`.

:func:`trace_model` inspects a program written for **one example** once, eagerly
(site checks in :mod:`rdppl.program.sites`), and returns pure functions of a flat
unconstrained latent vector ``u`` and an example ``x``, computed by
:mod:`numpyro.infer.util`:

- ``log_prior_and_distortion(u, x)``: ``log p(u)`` on unconstrained space (Jacobians
  included) and the distortion ``d(x, u)`` (docs/math.md §1), in one pass of the
  program;
- ``sample_initial(key, x)``: a draw from the prior;
- ``site_values(u, x)``: every latent (constrained) and deterministic site;
- ``simulate(key, beta, template)``: data with a known exact sample of ``pi_beta``
  (BDMC, docs/math.md §4).

The program is called with the example as its observed argument (``x``) whenever an
example is known, so programs that read ``x.shape`` work; only simulation calls it
with a template in place of data. The package's modules :mod:`~rdppl.program.sites`,
:mod:`~rdppl.program.calls` and :mod:`~rdppl.program.compiled` are the only ones
that know NumPyro's handlers, traces and sign conventions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import util as numpyro_util

from rdppl.program.calls import (
    as_program_parts,
    check_model_arguments,
    eager_trace,
    observed_argument,
)
from rdppl.program.compiled import Program
from rdppl.program.decorator import Distortion, Model, TracedModel
from rdppl.program.errors import ModelTraceError
from rdppl.program.sites import check_distortion, check_sites, structure_of

__all__ = ["ModelTraceError", "prior_predictive_example", "trace_model"]


def trace_model(
    model: Model | Callable[..., Any],
    example: Any,
    *,
    distortion: Distortion = "nll",
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
) -> TracedModel:
    """Trace a program once, eagerly, validate it, and return a :class:`TracedModel`.

    Parameters
    ----------
    model
        A :func:`model`-decorated program, or a plain one with ``observed=``.
    example
        One example of the data (its shape and dtype are checked against the
        observed site); the program receives it as its observed argument.
    distortion
        ``"nll"``, ``"squared_error"`` or a function ``d(x, x_hat) -> scalar``.
    observed, reconstruction
        Site names overriding those given to :func:`model`.
    model_args, model_kwargs
        Extra arguments of the program (arrays are traced in compiled code).

    Returns
    -------
    TracedModel

    Raises
    ------
    ValueError
        Unknown observed or reconstruction site, a reconstruction site that is not
        deterministic, discrete, scaled or masked latent sites, other observed
        sites, no latent sites, a mismatched example shape, duplicate site names,
        or a distortion that does not return a scalar.
    TypeError
        A distortion that is neither a known name nor a callable.
    """
    fn, observed, reconstruction = as_program_parts(model, observed, reconstruction)
    check_distortion(distortion)
    if distortion != "nll" and reconstruction is None:
        kind = (
            distortion if isinstance(distortion, str) else "a user distortion function"
        )
        raise ValueError(
            f"distortion {kind!r} needs a reconstruction site: pass "
            "reconstruction='name' of a numpyro.deterministic site to "
            "rdppl.model(...) or to this function"
        )
    check_model_arguments(model_args, model_kwargs)
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    argument = observed_argument(fn, observed, model_args, model_kwargs)
    program = Program(
        fn, observed, argument, reconstruction, distortion, (), model_args, model_kwargs
    )
    conditioned, kwargs = program.bind(example)
    trace = eager_trace(
        conditioned,
        model_args,
        kwargs,
        0,
        example_shape=tuple(np.shape(example)),
    )
    latent_names = check_sites(trace, observed, reconstruction)
    site_shape = tuple(trace[observed]["fn"].shape())
    if tuple(np.shape(example)) != site_shape:
        raise ValueError(
            f"each example must have the shape of observed site {observed!r}, "
            f"{site_shape}, but has shape {tuple(np.shape(example))}; write the "
            "model for ONE example and pass data with a leading example axis"
        )
    latent_shapes = _unconstrained_shapes(
        conditioned,
        model_args,
        kwargs,
        {name: trace[name]["value"] for name in latent_names},
    )
    if callable(distortion):
        value = distortion(jnp.asarray(example), trace[reconstruction]["value"])
        if np.shape(value) != ():
            raise ValueError(
                "a distortion function must return a scalar per example, got "
                f"shape {np.shape(value)}"
            )
    structure = structure_of(
        trace,
        eager_trace(conditioned, model_args, kwargs, 1),
        latent_names,
        latent_shapes,
        observed=observed,
        reconstruction=reconstruction,
        distortion=distortion,
    )
    program = dataclasses.replace(
        program, latent_shapes=tuple(sorted(latent_shapes.items()))
    )
    _check_traceable(program, jnp.asarray(example), structure.num_latent_dimensions)
    return TracedModel(
        log_terms=program.log_terms,
        initial=program.initial,
        constrain=program.constrain,
        simulator=program.simulate,
        structure=structure,
    )


def _unconstrained_shapes(
    conditioned: Callable, model_args: tuple, kwargs: dict, values: dict
) -> dict[str, tuple[int, ...]]:
    """The shape of each latent site on unconstrained space.

    Found abstractly (nothing runs or compiles); a program that cannot be traced
    abstractly runs eagerly here, and :func:`_check_traceable` explains why later.
    """

    def unconstrained(values: dict) -> dict:
        return numpyro_util.unconstrain_fn(conditioned, model_args, kwargs, values)

    try:
        free = jax.eval_shape(unconstrained, values)
    except Exception:  # noqa: BLE001 -- the eager run raises what matters
        free = unconstrained(values)
    return {name: tuple(np.shape(free[name])) for name in values}


def _check_traceable(program: Program, example: jax.Array, dim: int) -> None:
    """Trace the program abstractly, as compiled code will, before anything compiles.

    The eager trace runs the program on concrete values; under ``jit`` and ``vmap``
    the latents, the example and the array arguments are abstract, and a Python
    ``if`` on a latent or an array used as a shape fails only then. Tracing here
    (:func:`equinox.filter_eval_shape`, no compilation) raises those errors with
    rdppl's explanation (:class:`ModelTraceError`) instead of deep inside a run.
    """
    position = jnp.zeros((dim,), jnp.result_type(float))
    # the log density is traced in the run itself (its errors get the same
    # explanation): here it would run before the data's support is checked
    eqx.filter_eval_shape(program.initial, jax.random.key(0), example)
    eqx.filter_eval_shape(program.constrain, position, example)


def prior_predictive_example(
    model: Model | Callable[..., Any],
    *,
    observed: str | None = None,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
) -> jax.Array:
    """One draw of the observed site from the program run without data.

    Used as a shape and dtype template when no data are given (BDMC).

    Raises
    ------
    ValueError
        If the program cannot run without data or has no such site.
    """
    fn, observed, _ = as_program_parts(model, observed, None)
    check_model_arguments(model_args, model_kwargs)
    model_kwargs = dict(model_kwargs or {})
    argument = observed_argument(fn, observed, tuple(model_args), model_kwargs)
    if argument is not None:
        model_kwargs[argument] = None
    try:
        trace = eager_trace(
            fn, tuple(model_args), model_kwargs, 0, "running the program without data"
        )
    except (AttributeError, TypeError) as error:
        raise ValueError(
            f"the program failed when run without data ({type(error).__name__}: "
            f"{error}); it probably reads its observed argument {observed!r}. Pass "
            "an example array as data= to give the simulated data's shape"
        ) from error
    if observed not in trace:
        raise ValueError(
            f"observed site {observed!r} is not in the model; its sites are "
            f"{list(trace)}"
        )
    return jnp.asarray(trace[observed]["value"])
