"""Trace a NumPyro program into a :class:`~rdppl.model.TracedModel`.

:func:`trace_model` inspects a program written for **one example** once, eagerly
(site checks in :mod:`rdppl.sites`), and returns pure functions of a flat
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
with a template in place of data. This module and :mod:`rdppl.sites` are the only
ones that know NumPyro's handlers, traces and sign conventions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import distributions as dist
from numpyro import handlers
from numpyro.infer import util as numpyro_util
from numpyro.primitives import Messenger

from rdppl.model import Distortion, Model, TracedModel
from rdppl.sites import base_distribution, check_distortion, check_sites, structure_of

__all__ = ["ModelTraceError", "prior_predictive_example", "trace_model"]


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
    rdppl_dir = os.path.dirname(os.path.abspath(__file__))
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
def _user_code(doing: str, example_shape: tuple[int, ...] | None) -> Iterator[None]:
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


def _check_model_arguments(model_args: Any, model_kwargs: Any) -> None:
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


def _observed_argument(
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


class _Program(eqx.Module):
    """A NumPyro program with its site names, arguments and distortion."""

    # not static: a program that is a pytree (an equinox module, a functools.partial)
    # has its arrays traced, so new weights do not recompile (rdppl.decoder_model)
    fn: Callable[..., Any]
    observed: str = eqx.field(static=True)
    observed_argument: str | None = eqx.field(static=True)
    reconstruction: str | None = eqx.field(static=True)
    distortion: Distortion = eqx.field(static=True)
    latent_shapes: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    model_args: tuple
    model_kwargs: dict

    def bind(self, value: Any, *, condition: bool = True) -> tuple[Callable, dict]:
        """The program with the observed argument (and site) set to ``value``."""
        kwargs = dict(self.model_kwargs)
        if self.observed_argument is not None:
            kwargs[self.observed_argument] = value
        if not condition:
            return self.fn, kwargs
        return handlers.condition(self.fn, data={self.observed: value}), kwargs

    def unravel(self, position: jax.Array) -> dict[str, jax.Array]:
        template = {
            name: jnp.zeros(shape, position.dtype) for name, shape in self.latent_shapes
        }
        return ravel_pytree(template)[1](position)

    def log_terms(
        self, position: jax.Array, example: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        with _user_code(
            "tracing the program for one example (log density)", np.shape(example)
        ):
            conditioned, kwargs = self.bind(example)
            # The handler NumPyro's potential_energy uses: constrain each latent and add
            # its log-Jacobian as a factor site; one pass of the program.
            substituted = handlers.substitute(
                conditioned,
                substitute_fn=partial(
                    numpyro_util._unconstrain_reparam, self.unravel(position)
                ),
            )
            log_probs, trace = numpyro_util.compute_log_probs(
                substituted, self.model_args, kwargs, {}
            )
            log_prior = sum(
                (v for k, v in log_probs.items() if k != self.observed),
                start=jnp.zeros((), position.dtype),
            )
            return log_prior, self._distortion(log_probs, trace, example)

    def _distortion(
        self, log_probs: Mapping[str, jax.Array], trace: Mapping, example: jax.Array
    ) -> jax.Array:
        if self.distortion == "nll":
            return -log_probs[self.observed]
        reconstruction = trace[self.reconstruction]["value"]
        if self.distortion == "squared_error":
            return jnp.sum(jnp.square(example - reconstruction))
        return jnp.asarray(self.distortion(example, reconstruction))

    def _unconstrain(self, model: Callable, kwargs: dict, trace: Mapping) -> jax.Array:
        values = {name: trace[name]["value"] for name, _ in self.latent_shapes}
        free = numpyro_util.unconstrain_fn(model, self.model_args, kwargs, values)
        return ravel_pytree(free)[0]

    def initial(self, rng_key: jax.Array, example: jax.Array) -> jax.Array:
        with _user_code(
            "tracing the program for one example (prior draw)", np.shape(example)
        ):
            conditioned, kwargs = self.bind(example)
            trace = handlers.trace(handlers.seed(conditioned, rng_key)).get_trace(
                *self.model_args, **kwargs
            )
            return self._unconstrain(conditioned, kwargs, trace)

    def constrain(self, position: jax.Array, example: jax.Array) -> dict:
        with _user_code(
            "tracing the program for one example (site values)", np.shape(example)
        ):
            conditioned, kwargs = self.bind(example)
            values = numpyro_util.constrain_fn(
                conditioned,
                self.model_args,
                kwargs,
                self.unravel(position),
                return_deterministic=True,
            )
            return dict(values)

    def simulate(
        self, rng_key: jax.Array, beta: jax.Array, template: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        with _user_code(
            "tracing the program to simulate data (BDMC)", np.shape(template)
        ):
            latent_key, noise_key = jax.random.split(rng_key)
            # The template only gives the program a shape to read; latents come from the
            # prior and x is drawn below from the observation distribution at z*.
            program, kwargs = self.bind(template, condition=False)
            trace = handlers.trace(handlers.seed(program, latent_key)).get_trace(
                *self.model_args, **kwargs
            )
            position = self._unconstrain(program, kwargs, trace)
            observation = trace[self.observed]["fn"]
            shape = template.shape
            noise = jax.random.normal(noise_key, shape, dtype=position.dtype)
            if self.distortion == "squared_error":
                reconstruction = trace[self.reconstruction]["value"]
                x = reconstruction + noise * jnp.sqrt(0.5 / beta)
            else:
                base = base_distribution(observation)
                if isinstance(base, dist.Normal):
                    loc = jnp.broadcast_to(base.loc, shape)
                    scale = jnp.broadcast_to(base.scale, shape)
                    x = loc + scale / jnp.sqrt(beta) * noise
                else:
                    x = observation.sample(noise_key)
            return jnp.asarray(x).astype(template.dtype), position


def _as_program_parts(
    model: Model | Callable[..., Any],
    observed: str | None,
    reconstruction: str | None,
) -> tuple[Callable[..., Any], str, str | None]:
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


def _eager_trace(
    program: Callable,
    model_args: tuple,
    kwargs: dict,
    seed: int,
    doing: str = "running the program eagerly on the first example",
    example_shape: tuple[int, ...] | None = None,
) -> Mapping[str, Any]:
    try:
        with _user_code(doing, example_shape):
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
    fn, observed, reconstruction = _as_program_parts(model, observed, reconstruction)
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
    _check_model_arguments(model_args, model_kwargs)
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    argument = _observed_argument(fn, observed, model_args, model_kwargs)
    program = _Program(
        fn, observed, argument, reconstruction, distortion, (), model_args, model_kwargs
    )
    conditioned, kwargs = program.bind(example)
    trace = _eager_trace(
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
    free = numpyro_util.unconstrain_fn(
        conditioned,
        model_args,
        kwargs,
        {name: trace[name]["value"] for name in latent_names},
    )
    latent_shapes = {name: tuple(np.shape(free[name])) for name in latent_names}
    if callable(distortion):
        value = distortion(jnp.asarray(example), trace[reconstruction]["value"])
        if np.shape(value) != ():
            raise ValueError(
                "a distortion function must return a scalar per example, got "
                f"shape {np.shape(value)}"
            )
    structure = structure_of(
        trace,
        _eager_trace(conditioned, model_args, kwargs, 1),
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


def _check_traceable(program: _Program, example: jax.Array, dim: int) -> None:
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
    fn, observed, _ = _as_program_parts(model, observed, None)
    _check_model_arguments(model_args, model_kwargs)
    model_kwargs = dict(model_kwargs or {})
    argument = _observed_argument(fn, observed, tuple(model_args), model_kwargs)
    if argument is not None:
        model_kwargs[argument] = None
    try:
        trace = _eager_trace(
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
