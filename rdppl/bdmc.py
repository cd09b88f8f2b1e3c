"""Bidirectional Monte Carlo (BDMC): certified bounds on simulated data (MATH.md §3).

For an inverse temperature ``beta*`` we draw ``z* ~ p(z)`` and then ``x`` so that
``z*`` is an exact sample of ``pi_{beta*}(z | x)``. Forward AIS from the prior to
``beta*`` gives a stochastic lower bound on ``log Z_{beta*}(x)``; reverse AIS started at
``z*`` with the same kernels in reverse order gives a stochastic upper bound. Their gap
bounds the error of AIS on such data (and the KL divergence of its samples from the
exact tempered posterior).

Data can be simulated at ``beta*`` when ``p(x | z)^beta*`` is, as a function of ``z``,
proportional to a normalised density of ``x`` whose normaliser does not depend on ``z``:

- ``"squared_error"`` at any ``beta*``: ``x = f(z*) + N(0, I / (2 beta*))``;
- ``"nll"`` at ``beta* = 1``: ``x ~ p(x | z*)``, any observation distribution;
- ``"nll"`` at other ``beta*`` for a Normal observation whose scale does not depend on
  the latents: ``x ~ Normal(loc(z*), scale / sqrt(beta*))``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from numpyro import distributions as dist
from numpyro import handlers

from rdppl import estimators, results, runner
from rdppl.kernels import HMC, NUTS
from rdppl.model import Model, ModelSpec, ModelStructure, as_model_spec
from rdppl.schedules import validate_schedule
from rdppl.validation import validate_count, validate_kernel, validate_rng_key

__all__ = ["bdmc", "bdmc_tree", "simulate", "truncate_schedule", "validate_bdmc_betas"]

SUPPORTED = (
    "BDMC can simulate data for distortion 'squared_error' at any beta*, for 'nll' "
    "at beta* = 1 with any observation distribution, and for 'nll' at other beta* "
    "with a Normal observation whose scale does not depend on the latents"
)


def _base_distribution(fn: dist.Distribution) -> dist.Distribution:
    while isinstance(fn, dist.Independent | dist.ExpandedDistribution):
        fn = fn.base_dist
    return fn


def prior_predictive_example(
    spec: ModelSpec, model_args: tuple, model_kwargs: Mapping[str, Any]
) -> jax.Array:
    """One draw of the observed site from the model (a shape template)."""
    trace = handlers.trace(handlers.seed(spec.fn, jax.random.key(0))).get_trace(
        *model_args, **model_kwargs
    )
    if spec.observed not in trace:
        raise ValueError(
            f"observed site {spec.observed!r} is not in the model; its sites are "
            f"{list(trace)}"
        )
    return jnp.asarray(trace[spec.observed]["value"])


def truncate_schedule(schedule: np.ndarray, beta: float) -> np.ndarray:
    """The schedule's temperatures below ``beta``, followed by ``beta``."""
    return np.concatenate([schedule[schedule < beta], [beta]])


def validate_bdmc_betas(
    spec: ModelSpec,
    structure: ModelStructure,
    betas: Sequence[float],
    schedule: np.ndarray,
    *,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
    example: jax.Array | None = None,
) -> np.ndarray:
    """Check that data can be simulated at each ``beta*`` inside the schedule.

    Raises
    ------
    ValueError
        Naming the offending ``beta*`` or the unsupported distortion.
    """
    values = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bdmc betas must be a non-empty 1-D list, got {betas!r}")
    for beta in values:
        if not np.isfinite(beta) or beta <= 0:
            raise ValueError(f"bdmc beta* must be finite and positive, got {beta}")
        if beta > schedule[-1]:
            raise ValueError(
                f"bdmc beta* = {beta} lies outside the schedule, which ends at "
                f"{schedule[-1]}"
            )
    if len(np.unique(values)) != len(values):
        raise ValueError(f"bdmc betas must be distinct, got {values.tolist()}")
    if callable(spec.distortion):
        raise ValueError(
            "BDMC cannot simulate data for a user distortion function: " + SUPPORTED
        )
    if spec.distortion == "nll" and np.any(values != 1.0):
        if example is None:
            example = prior_predictive_example(
                spec, model_args, dict(model_kwargs or {})
            )
        scales = []
        for seed in (1, 2):
            trace = handlers.trace(
                handlers.seed(spec._conditioned(example), jax.random.key(seed))
            ).get_trace(*model_args, **dict(model_kwargs or {}))
            base = _base_distribution(trace[spec.observed]["fn"])
            if not isinstance(base, dist.Normal):
                raise ValueError(
                    f"cannot simulate data at beta* = "
                    f"{values[values != 1.0].tolist()} for observation distribution "
                    f"{type(base).__name__} of site {spec.observed!r}: " + SUPPORTED
                )
            scales.append(np.asarray(base.scale))
        if scales[0].shape != scales[1].shape or not np.allclose(*scales):
            raise ValueError(
                f"the scale of observed site {spec.observed!r} depends on the latents, "
                "so data cannot be simulated at beta* != 1: " + SUPPORTED
            )
    return values


def _simulate_one(
    spec: ModelSpec,
    rng_key: jax.Array,
    beta: jax.Array,
    template: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    latent_key, noise_key = jax.random.split(rng_key)
    position = spec.sample_prior_flat(latent_key, template, model_args, model_kwargs)
    unravel = spec.unravel_fn(template, model_args, model_kwargs)
    trace, _ = spec.trace_at(unravel(position), template, model_args, model_kwargs)
    observation = trace[spec.observed]["fn"]
    shape = template.shape
    noise = jax.random.normal(noise_key, shape, dtype=position.dtype)
    if spec.distortion == "squared_error":
        reconstruction = trace[spec.reconstruction]["value"]
        x = reconstruction + noise * jnp.sqrt(0.5 / beta)
    else:
        base = _base_distribution(observation)
        if isinstance(base, dist.Normal):
            loc = jnp.broadcast_to(base.loc, shape)
            scale = jnp.broadcast_to(base.scale, shape)
            x = loc + scale / jnp.sqrt(beta) * noise
        else:
            x = observation.sample(noise_key).astype(template.dtype)
    latents = {name: trace[name]["value"] for name in spec._latent_names(trace)}
    return x.astype(template.dtype), position, latents


@eqx.filter_jit
def simulate(
    spec: ModelSpec,
    rng_key: jax.Array,
    beta: jax.Array,
    template: jax.Array,
    num_examples: int,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Simulate ``num_examples`` data points whose exact ``pi_beta`` sample is known.

    Returns
    -------
    data, exact_position, latents
        Data ``(examples, *observed_shape)``, the flat unconstrained ``z*``
        ``(examples, dim)``, and ``z*`` per latent site in constrained space.
    """
    keys = jax.random.split(rng_key, num_examples)
    return jax.vmap(
        lambda key: _simulate_one(spec, key, beta, template, model_args, model_kwargs)
    )(keys)


def bdmc_tree(
    spec: ModelSpec,
    structure: ModelStructure,
    kernel: HMC | NUTS,
    *,
    rng_key: jax.Array,
    betas: Sequence[float],
    schedule: np.ndarray,
    num_examples: int,
    num_chains: int,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    chunk_size: int | None,
    progress: bool,
    template: jax.Array | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> xr.DataTree:
    """Run BDMC at each ``beta*`` (validated inputs); see :func:`bdmc`."""
    start = time.perf_counter()
    values = np.asarray(betas, dtype=np.float64)
    if template is None:
        template = prior_predictive_example(spec, model_args, model_kwargs)
    template = jnp.asarray(template)
    if jnp.issubdtype(template.dtype, jnp.floating):
        template = template.astype(jnp.result_type(float))
    lower, upper, distortion, lower_ess, upper_ess = [], [], [], [], []
    simulated, latents, temperatures = [], [], []
    cost = 0
    for beta, key in zip(values, jax.random.split(rng_key, len(values)), strict=True):
        simulate_key, forward_key, reverse_key = jax.random.split(key, 3)
        data, exact_position, exact_latents = simulate(
            spec,
            simulate_key,
            jnp.asarray(beta, template.dtype),
            template,
            num_examples,
            model_args,
            model_kwargs,
        )
        path = truncate_schedule(schedule, beta)
        temperatures.append(len(path) - 1)
        forward_run, step_sizes, preliminary_cost = runner.forward(
            spec,
            kernel,
            rng_key=forward_key,
            data=data,
            betas=path,
            num_chains=num_chains,
            model_args=model_args,
            model_kwargs=model_kwargs,
            chunk_size=chunk_size,
            progress=progress,
            devices=devices,
        )
        reverse_run = runner.reverse(
            spec,
            kernel,
            rng_key=reverse_key,
            data=data,
            betas=path,
            exact_position=exact_position,
            num_chains=num_chains,
            step_sizes=step_sizes,
            model_args=model_args,
            model_kwargs=model_kwargs,
            chunk_size=chunk_size,
            progress=progress,
            devices=devices,
        )
        cost += (
            preliminary_cost
            + forward_run.num_gradient_evaluations
            + reverse_run.num_gradient_evaluations
        )
        log_u = jnp.asarray(reverse_run.final_log_weight)
        lower.append(forward_run.log_z[:, -1])
        upper.append(-np.asarray(estimators.log_mean_exp(log_u)))
        distortion.append(forward_run.distortion[:, -1])
        lower_ess.append(forward_run.effective_sample_size[:, -1])
        upper_ess.append(np.asarray(estimators.effective_sample_size(log_u)))
        simulated.append(np.asarray(data))
        latents.append(jax.device_get(exact_latents))

    def stack(arrays: list) -> np.ndarray:
        return np.stack([np.asarray(a, dtype=np.float64) for a in arrays], axis=1)

    lower_bound, upper_bound = stack(lower), stack(upper)
    bounds = results.curve_group(
        {
            "lower": lower_bound,
            "upper": upper_bound,
            "gap": upper_bound - lower_bound,
            "distortion": stack(distortion),
            "forward_effective_sample_size": stack(lower_ess),
            "reverse_effective_sample_size": stack(upper_ess),
            "num_temperatures": np.broadcast_to(
                np.asarray(temperatures), lower_bound.shape
            ),
        },
        values,
        attrs={"units": "nats"},
    )
    observed = np.stack(simulated, axis=1)
    observed_dims = (results.EXAMPLE_DIM, results.BETA_DIM) + tuple(
        f"{spec.observed}_dim_{i}" for i in range(observed.ndim - 2)
    )
    latent_arrays = {
        name: np.stack([np.asarray(lat[name]) for lat in latents], axis=1)
        for name in latents[0]
    }
    latent_dims = {
        name: (results.EXAMPLE_DIM, results.BETA_DIM)
        + tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2))
        for name, value in latent_arrays.items()
    }
    coords = {
        results.EXAMPLE_DIM: np.arange(num_examples),
        results.BETA_DIM: values,
    }
    groups = {
        "bdmc": bounds,
        "observed_data": results.make_group(
            {spec.observed: observed},
            dims={spec.observed: observed_dims},
            coords=coords,
        ),
        "true_latents": results.make_group(
            latent_arrays, dims=latent_dims, coords=coords
        ),
    }
    attrs = {
        "observed_site": spec.observed,
        "distortion": spec.distortion,
        "latent_sites": [site.name for site in structure.latent_sites],
        "num_chains": num_chains,
        "num_examples": num_examples,
        "kernel": repr(kernel),
        "wall_time_seconds": time.perf_counter() - start,
        "num_gradient_evaluations": cost,
        **results.versions(),
    }
    return results.make_tree(groups, attrs=attrs, name="bdmc")


def bdmc(
    model: Model | Callable[..., Any],
    *,
    rng_key: jax.Array,
    betas: Sequence[float],
    schedule: Any,
    num_examples: int = 16,
    num_chains: int = 16,
    distortion: str = "nll",
    kernel: HMC | NUTS | None = None,
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
) -> xr.DataTree:
    """Bound ``log Z_beta*`` from both sides on data simulated from the model.

    For each ``beta*`` in ``betas``, ``num_examples`` pairs ``(z*, x)`` are simulated
    with ``z*`` an exact sample of ``pi_{beta*}(z | x)``; forward AIS over the schedule
    truncated at ``beta*`` gives ``lower`` and reverse AIS from ``z*`` with the same
    kernels and step sizes in reverse order gives ``upper``. Both are stochastic
    bounds: ``E[lower] <= log Z <= E[upper]``.

    Parameters
    ----------
    model
        A :func:`rdppl.model` program (or a plain one with ``observed=``).
    rng_key
        JAX random key.
    betas
        The inverse temperatures ``beta*`` to certify; each must lie in
        ``(0, schedule[-1]]``.
    schedule
        The forward schedule; each run uses its temperatures below ``beta*``
        followed by ``beta*``.
    num_examples
        Simulated examples per ``beta*``.
    num_chains
        AIS chains per example and direction.
    distortion, kernel, observed, reconstruction, model_args, model_kwargs,
    chunk_size, progress, devices
        As for :func:`rdppl.rd_curve`. ``distortion`` must be simulable (see the
        module docstring); a user function is not.

    Returns
    -------
    xarray.DataTree
        Group ``bdmc`` with ``lower``, ``upper``, ``gap``, ``distortion`` (forward
        estimate at ``beta*``), effective sample sizes and ``num_temperatures``, all
        over ``(example, beta)``; ``observed_data`` (the simulated data) and
        ``true_latents`` (``z*`` per site), over ``(example, beta, ...)``.
    """
    rng_key = validate_rng_key(rng_key)
    kernel = validate_kernel(HMC() if kernel is None else kernel)
    num_chains = validate_count(num_chains, "num_chains")
    if chunk_size is not None:
        chunk_size = validate_count(chunk_size, "chunk_size")
    num_examples = validate_count(num_examples, "num_examples")
    devices = runner.validate_devices(devices, num_examples)
    full_schedule = validate_schedule(schedule)
    spec = as_model_spec(
        model, distortion=distortion, observed=observed, reconstruction=reconstruction
    )
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    template = prior_predictive_example(spec, model_args, model_kwargs)
    structure = spec.inspect(template, model_args, model_kwargs)
    values = validate_bdmc_betas(
        spec,
        structure,
        betas,
        full_schedule,
        model_args=model_args,
        model_kwargs=model_kwargs,
        example=template,
    )
    return bdmc_tree(
        spec,
        structure,
        kernel,
        rng_key=rng_key,
        betas=values,
        schedule=full_schedule,
        num_examples=num_examples,
        num_chains=num_chains,
        model_args=model_args,
        model_kwargs=model_kwargs,
        chunk_size=chunk_size,
        progress=progress,
        template=template,
        devices=devices,
    )
