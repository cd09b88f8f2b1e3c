"""Bidirectional Monte Carlo: certified bounds on simulated data (docs/math.md §4).

For an inverse temperature ``beta*`` we draw ``z* ~ p(z)`` and then ``x`` so that
``z*`` is an exact sample of ``pi_{beta*}(z | x)`` (:meth:`TracedModel.simulate`).
Forward AIS from the prior to ``beta*`` gives a stochastic lower bound on
``log Z_{beta*}(x)``; reverse AIS started at ``z*`` with the same kernels in reverse
order gives a stochastic upper bound. Their gap bounds the error of AIS on such data
(and the KL divergence of its samples from the exact tempered posterior).

Data can be simulated at ``beta*`` when ``p(x | z)^beta*`` is, as a function of ``z``,
proportional to a normalised density of ``x`` whose normaliser does not depend on ``z``:

- ``"squared_error"`` at any ``beta*``: ``x = f(z*) + N(0, I / (2 beta*))``;
- ``"nll"`` at ``beta* = 1``: ``x ~ p(x | z*)``, any observation distribution;
- ``"nll"`` at other ``beta*`` for a Normal observation whose scale does not depend on
  the latents: ``x ~ Normal(loc(z*), scale / sqrt(beta*))``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from rdppl import results
from rdppl.entry import check_memory, finished_tree, holding
from rdppl.numerics import estimators
from rdppl.numerics.diagnostics import pareto_khat
from rdppl.numerics.schedules import validate_schedule
from rdppl.program.data import validate_data
from rdppl.program.decorator import (
    DISTORTIONS,
    Distortion,
    Model,
    ModelStructure,
    TracedModel,
)
from rdppl.program.recompile import note_program
from rdppl.program.tracing import prior_predictive_example, trace_model
from rdppl.sampler import protocol, runner
from rdppl.sampler.checkpoint import Checkpoint, as_checkpoint, open_store
from rdppl.sampler.devices import validate_devices
from rdppl.sampler.kernels import MCMCKernel
from rdppl.validation import (
    validate_count,
    validate_protocol_options,
    validate_run_settings,
    validate_temperatures,
)

__all__ = ["bdmc", "run_bdmc", "simulate", "truncate_schedule", "validate_bdmc_betas"]

SUPPORTED = (
    "BDMC can simulate data for distortion 'squared_error' at any beta*, for 'nll' "
    "at beta* = 1 with any observation distribution, and for 'nll' at other beta* "
    "with a Normal observation whose scale does not depend on the latents"
)


def truncate_schedule(schedule: np.ndarray, beta: float) -> np.ndarray:
    """The schedule's temperatures below ``beta``, followed by ``beta``."""
    return np.concatenate([schedule[schedule < beta], [beta]])


def validate_bdmc_betas(
    structure: ModelStructure, betas: Sequence[float], schedule: np.ndarray
) -> np.ndarray:
    """Check that data can be simulated at each ``beta*`` inside the schedule.

    Raises
    ------
    ValueError
        Naming the offending ``beta*`` or the unsupported distortion.
    """
    values = validate_temperatures(betas, "betas")
    for beta in values:
        if not np.isfinite(beta) or beta <= 0:
            raise ValueError(f"bdmc beta* must be finite and positive, got {beta}")
        if beta > schedule[-1]:
            raise ValueError(
                f"bdmc beta* = {beta} lies outside the schedule, which ends at "
                f"{schedule[-1]}"
            )
        if jnp.asarray(beta) <= 0:  # 3e-249 is 0 in float32
            raise ValueError(
                f"bdmc beta* must be positive in the run's float dtype "
                f"{jnp.result_type(float).name}, got {beta}"
            )
    if len(np.unique(values)) != len(values):
        raise ValueError(f"bdmc betas must be distinct, got {values.tolist()}")
    if structure.distortion not in DISTORTIONS:
        raise ValueError(
            "BDMC cannot simulate data for a user distortion function: " + SUPPORTED
        )
    if structure.distortion == "nll" and np.any(values != 1.0):
        others = values[values != 1.0].tolist()
        if structure.observed_distribution != "Normal":
            raise ValueError(
                f"cannot simulate data at beta* = {others} for observation "
                f"distribution {structure.observed_distribution} of site "
                f"{structure.observed!r}: " + SUPPORTED
            )
        if not structure.observed_scale_is_fixed:
            raise ValueError(
                f"the scale of observed site {structure.observed!r} depends on the "
                "latents, so data cannot be simulated at beta* != 1: " + SUPPORTED
            )
    return values


@eqx.filter_jit
def simulate(
    target: TracedModel,
    rng_key: jax.Array,
    beta: jax.Array,
    template: jax.Array,
    num_examples: int,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Simulate ``num_examples`` data points whose exact ``pi_beta`` sample is known.

    Returns
    -------
    data, exact_position, latents
        Data ``(examples, *observed_shape)``, the flat unconstrained ``z*``
        ``(examples, dim)``, and ``z*`` per latent site in constrained space.
    """
    latent_names = target.structure.latent_names

    def one(key: jax.Array) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        x, position = target.simulate(key, beta, template)
        sites = target.site_values(position, x)
        return x, position, {name: sites[name] for name in latent_names}

    return jax.vmap(one)(jax.random.split(rng_key, num_examples))


def _bdmc_at(
    target: TracedModel,
    kernel: MCMCKernel,
    rng_key: jax.Array,
    beta: float,
    schedule: np.ndarray,
    num_examples: int,
    num_chains: int,
    template: jax.Array,
    execution: runner.Execution,
    options: protocol.ProtocolOptions = protocol.DEFAULT_OPTIONS,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], int]:
    """Simulate at one ``beta*``, run forward and reverse AIS; bounds and cost."""
    simulate_key, forward_key, reverse_key = jax.random.split(rng_key, 3)
    data, exact_position, exact_latents = simulate(
        target, simulate_key, jnp.asarray(beta, template.dtype), template, num_examples
    )
    path = truncate_schedule(schedule, beta)
    common = dict(data=data, num_chains=num_chains, execution=execution)
    label = f"BDMC at beta*={beta:g}"
    forward = protocol.forward(
        target,
        kernel,
        rng_key=forward_key,
        label=label,
        betas=path,
        options=options,
        **common,
    )
    forward_run, path = forward.run, forward.betas
    preliminary_cost = forward.preliminary_gradient_evaluations
    reverse_run = protocol.reverse(
        target,
        kernel,
        rng_key=reverse_key,
        exact_position=exact_position,
        betas=path,
        tuning=forward.tuning,
        label=label,
        resampling=options.resample_threshold is not None,
        num_points=options.num_curve_points,
        **common,
    )
    log_u = reverse_run.final_log_weight  # float64 on the host
    columns = {
        "lower": forward_run.log_z[:, -1],
        "upper": -np.asarray(estimators.log_mean_exp(log_u)),
        "distortion": forward_run.distortion[:, -1],
        "forward_importance_ess": forward_run.effective_sample_size[:, -1],
        "reverse_importance_ess": np.asarray(estimators.effective_sample_size(log_u)),
        "forward_pareto_khat": forward_run.pareto_khat[:, -1],
        "reverse_pareto_khat": np.asarray(pareto_khat(log_u), np.float64),
        "num_temperatures": np.full(num_examples, len(path) - 1),
    }
    cost = (
        preliminary_cost
        + forward_run.num_gradient_evaluations
        + reverse_run.num_gradient_evaluations
    )
    return columns, np.asarray(data), jax.device_get(exact_latents), cost


def run_bdmc(
    target: TracedModel,
    kernel: MCMCKernel,
    *,
    rng_key: jax.Array,
    betas: np.ndarray,
    schedule: np.ndarray,
    num_examples: int,
    num_chains: int,
    template: jax.Array,
    execution: runner.Execution = runner.DEFAULT_EXECUTION,
    options: protocol.ProtocolOptions = protocol.DEFAULT_OPTIONS,
) -> tuple[dict[str, xr.Dataset], int]:
    """Run BDMC at each validated ``beta*``; return the groups and the gradient cost."""
    template = jnp.asarray(template)
    if jnp.issubdtype(template.dtype, jnp.floating):
        template = template.astype(jnp.result_type(float))
    keys = jax.random.split(rng_key, len(betas))
    runs = [
        _bdmc_at(
            target,
            kernel,
            key,
            beta,
            schedule,
            num_examples,
            num_chains,
            template,
            execution,
            options,
        )
        for beta, key in zip(betas, keys, strict=True)
    ]
    columns = {name: [run[0][name] for run in runs] for name in runs[0][0]}
    simulated = [run[1] for run in runs]
    latents = [run[2] for run in runs]
    cost = sum(run[3] for run in runs)

    def stack(arrays: list) -> np.ndarray:
        return np.stack([np.asarray(a) for a in arrays], axis=1)

    groups = results.bdmc_groups(
        betas,
        {name: stack(column) for name, column in columns.items()},
        observed=target.structure.observed,
        simulated=stack(simulated),
        latents={name: stack([lat[name] for lat in latents]) for name in latents[0]},
    )
    return groups, cost


def bdmc(
    model: Model | Callable[..., Any],
    data: Any = None,
    *,
    rng_key: jax.Array,
    betas: Sequence[float],
    schedule: Any,
    num_examples: int = 16,
    num_chains: int = 16,
    distortion: Distortion = "nll",
    kernel: MCMCKernel | None = None,
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
    tune_schedule: bool | None = None,
    resample_threshold: float | None = None,
    preliminary_chains: int | None = None,
    num_curve_points: int | None = None,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    batch_size: int | None = None,
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
    data
        Optional examples; BDMC simulates its own data and uses only the first
        example's shape and dtype (a template). ``None`` draws the template from the
        program run without data.
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
    chunk_size, progress, devices, tune_schedule, resample_threshold,
    preliminary_chains, num_curve_points, checkpoint, batch_size
        As for :func:`rdppl.rd_curve`. A tuned schedule is tuned per ``beta*``, by
        that forward run's preliminary run; the reverse run replays it.
        Resampling applies to the forward runs; reverse AIS never resamples.
        ``distortion`` must be simulable (see the
        module docstring); a user function is not.

    Returns
    -------
    xarray.DataTree
        Group ``bdmc`` with ``lower``, ``upper``, ``gap``, ``distortion`` (forward
        estimate at ``beta*``), the importance ESS and Pareto k-hat of each
        direction's final weights (``forward_importance_ess``,
        ``reverse_importance_ess``, ``forward_pareto_khat``,
        ``reverse_pareto_khat``) and ``num_temperatures``, all over ``(example,
        beta)``; ``observed_data`` (the simulated data) and ``true_latents`` (``z*``
        per site), over ``(example, beta, ...)``. Attributes record settings,
        versions and ``num_gradient_evaluations``.

    Warns
    -----
    RDWarning
        When a diagnostic flags the run (:func:`rdppl.diagnostics.check_result`).
    """
    start = time.perf_counter()
    rng_key, kernel, num_chains, execution = validate_run_settings(
        rng_key, kernel, num_chains, chunk_size, progress, batch_size
    )
    num_examples = validate_count(num_examples, "num_examples")
    checkpoint = as_checkpoint(checkpoint)
    options = validate_protocol_options(
        tune_schedule, resample_threshold, kernel, preliminary_chains, num_chains,
        num_curve_points,
    )  # fmt: skip
    devices = validate_devices(devices, num_examples, execution.batch_size)
    full_schedule = validate_schedule(schedule)
    model_args = tuple(model_args)
    if data is None:
        template = prior_predictive_example(
            model, observed=observed, model_args=model_args, model_kwargs=model_kwargs
        )
    else:
        template = validate_data(data)[0]
    target = trace_model(
        model,
        template,
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    values = validate_bdmc_betas(target.structure, betas, full_schedule)
    check_memory(
        "bdmc",
        target.structure,
        kernel,
        execution._replace(devices=devices),
        num_chains=num_chains,
        num_examples=num_examples,
        num_temperatures=len(full_schedule),
        num_curve_points=options.num_curve_points,
    )
    settings = dict(
        schedule=full_schedule, betas=values, num_examples=num_examples,
        num_chains=num_chains, kernel=kernel, rng_key=rng_key, options=tuple(options),
    )  # fmt: skip
    store = open_store(checkpoint, "bdmc", target, template[None], settings)
    with holding(store):
        note_program(  # just before compiling: warns at the caller's line
            model,
            target.structure,
            template,
            model_args=model_args,
            model_kwargs=model_kwargs,
            distortion=distortion,
        )
        groups, cost = run_bdmc(
            target,
            kernel,
            rng_key=rng_key,
            betas=values,
            schedule=full_schedule,
            num_examples=num_examples,
            num_chains=num_chains,
            template=template,
            execution=execution._replace(devices=devices, checkpoint=store),
            options=options,
        )
    attrs = results.run_attrs(
        target.structure,
        kernel,
        rng_key=rng_key,
        num_chains=num_chains,
        betas=None,
        wall_time=time.perf_counter() - start,
        num_gradient_evaluations=cost,
        num_examples=num_examples,
        **options._asdict(),
    )
    return finished_tree(groups, attrs, "bdmc")
