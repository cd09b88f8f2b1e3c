"""``rd_curve``: the whole rate-distortion curve of a model from one AIS run.

Data flow: validate arguments -> trace the model
(:func:`rdppl.program.decorator.trace_model`)
-> forward AIS with the step-size protocol (:mod:`rdppl.sampler.runner`) -> groups built
by
:mod:`rdppl.results` -> one ``DataTree``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as np
import xarray as xr

from rdppl import results
from rdppl.bdmc import run_bdmc, validate_bdmc_betas
from rdppl.entry import check_memory, finished_tree, holding
from rdppl.numerics.schedules import validate_schedule
from rdppl.program.decorator import Model, TracedModel
from rdppl.program.prepare import prepare_model
from rdppl.program.recompile import note_program
from rdppl.sampler import protocol, records, runner
from rdppl.sampler.checkpoint import Checkpoint, as_checkpoint, open_store
from rdppl.sampler.devices import validate_devices
from rdppl.sampler.kernels import MCMCKernel
from rdppl.validation import (
    validate_count,
    validate_protocol_options,
    validate_run_settings,
    validate_temperatures,
)

__all__ = ["rd_curve"]

# fold_in constant of the key that resamples the equal-weight posterior draws
POSTERIOR = 0x9057

Distortion = str | Callable[[jax.Array, jax.Array], jax.Array]


def rd_curve(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    rng_key: jax.Array,
    schedule: Any,
    num_chains: int = 16,
    distortion: Distortion = "nll",
    kernel: MCMCKernel | None = None,
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    bdmc_betas: Sequence[float] | None = None,
    bdmc_num_examples: int = 16,
    devices: Sequence[jax.Device] | None = None,
    posterior_betas: Sequence[float] | None = None,
    tune_schedule: bool | None = None,
    resample_threshold: float | None = None,
    preliminary_chains: int | None = None,
    num_curve_points: int | None = None,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    batch_size: int | None = None,
) -> xr.DataTree:
    """Estimate the rate-distortion curve of a model on data by AIS.

    Every intermediate temperature of one AIS run gives one point of the curve
    (Huang et al., 2020). Examples and chains are vectorised; the loop over
    temperatures is one compiled ``lax.scan`` per segment of ``chunk_size`` steps.

    Parameters
    ----------
    model
        A :func:`rdppl.model`-decorated NumPyro program, or a plain one together with
        ``observed=``. Written for one example; it receives each example as its
        observed argument.
    data
        Examples with a leading example axis: ``(examples, *observed_shape)``.
    rng_key
        JAX random key.
    schedule
        Inverse temperatures ``0 = beta_0 < ... < beta_K`` (e.g.
        :func:`rdppl.sigmoid_schedule`).
    num_chains
        Independent AIS chains per example.
    distortion
        ``"nll"`` (``-log p(x|z)``), ``"squared_error"`` (``||x - f(z)||^2`` with the
        reconstruction site), or a function ``d(x, x_hat) -> scalar``.
    kernel
        :class:`rdppl.HMC` (default: ``HMC(num_leapfrog=1, persistence=0.9,
        acceptance_drift=0.05)``, Hamiltonian AIS, one gradient evaluation per chain
        and temperature),
        :class:`rdppl.NUTS` or
        any BlackJAX kernel wrapped in :class:`rdppl.BlackJAXKernel`. With
        ``adapt_step_size=True`` (default) a preliminary run adapts and records one
        step size per example and temperature and the reported run replays them.
    observed, reconstruction
        Site names, overriding those given to :func:`rdppl.model`.
    model_args, model_kwargs
        Extra arguments of the program (arrays in them are traced, so new values do
        not recompile). Pass what changes between calls here (decoder weights, a
        trained network) and define the program once: a program built anew by a
        closure over new weights is a new Python function, which compiles again
        (seconds per call) and keeps each compiled copy in memory; see
        docs/guide.md, "Reusing compilation". :func:`rdppl.decoder_model` wraps a
        decoder network the same way.
    chunk_size
        Temperatures per compiled segment (default 256); results are identical for
        any value.
    progress
        Show progress bars.
    bdmc_betas
        If given, certify the curve: a BDMC run on data simulated from the model at
        each of these inverse temperatures is attached as group ``bdmc``.
    bdmc_num_examples
        Simulated examples per BDMC temperature.
    devices
        Shard the examples across these JAX devices (e.g. ``jax.devices()``); the
        number of examples must be a multiple of their number. ``None`` runs on the
        default device.
    posterior_betas
        Keep the weighted chains of the reported run at these temperatures (each is
        inserted into the schedule, so ``.sel(beta=...)`` finds it exactly):
        group ``weighted_posterior`` (every latent and deterministic site with the
        chains' ``log_weight`` and normalised ``weight``, dims ``(example, beta,
        ais_chain, ...)``) and group ``posterior``, as many equal-weight draws
        resampled from them (systematic resampling), over ArviZ's sample dims
        ``(chain, draw, example, beta, ...)``: ArviZ's summaries of ``posterior``
        are weighted ones (docs/analysing.md). ``posterior`` holds two ArviZ
        chains: chain ``c`` is resampled from the ``c``-th half of the AIS chains
        (consecutive ``ais_chain``) by that half's own normalised weights, so the
        two are independent estimates and R-hat compares them.
    tune_schedule
        Place the reported run's temperatures (as many as ``schedule`` has, from 0
        to its last) at equal thermodynamic length, measured by the preliminary
        run's distortion variances; the recorded step sizes and mass matrices are
        interpolated onto them (docs/math.md §3.1). The result's ``beta``
        coordinate is the tuned schedule (``posterior_betas`` are inserted
        exactly). ``None``: the default (``rdppl.validation.DEFAULT_TUNE_SCHEDULE``,
        on) with a preliminary run, off without one; ``False`` keeps ``schedule``.
    resample_threshold
        Resample the chains (systematic resampling; AIS becomes a sequential Monte
        Carlo sampler) whenever their importance ESS falls below this fraction of
        ``num_chains`` (docs/math.md §3.7). The preliminary run decides at which
        temperatures; the reported run resamples at the same ones, frozen, so
        ``log Z`` stays unbiased. ``None``: the default,
        ``rdppl.validation.DEFAULT_RESAMPLE_THRESHOLD`` (1: at every temperature
        where the weights differ) with a preliminary run, never without one;
        ``0``: never.
    preliminary_chains
        Chains per example of the preliminary run, which adapts the step sizes,
        mass matrices, schedule and resampling; it costs this many chains' worth of
        gradient evaluations. ``None``: the default,
        ``rdppl.validation.DEFAULT_PRELIMINARY_FRACTION`` (1/16) of ``num_chains``,
        at least 2 and at most ``num_chains``. Its chains are independent of the
        reported run's, so the reported estimates stay unbiased.
    num_curve_points
        Keep the curve at this many temperatures, evenly spread along the schedule
        (always the first and the last), so that memory, result files and
        checkpoints stay the same size however many temperatures the run has
        (e.g. 2000 points for ``10^6`` temperatures). ``log Z``, rate,
        distortion, importance ESS and k-hat at each kept temperature are exactly
        those of the full run; ``acceptance_rate`` is the mean over the
        transitions since the previous kept one, ``num_divergent`` their sum and
        ``resampled`` whether any resampled. The reported run replays the
        preliminary run's step size and mass matrix per block of transitions
        between kept temperatures (docs/math.md §3.3). ``None`` (default): every
        temperature.
    checkpoint
        A path or :class:`rdppl.Checkpoint`: save progress there (every minute by
        default, and after each AIS run) and, when the file exists, resume from it;
        the resumed result is bit-identical to an uninterrupted one. A checkpoint
        written with different arguments raises :class:`rdppl.CheckpointError`
        naming what differs (:mod:`rdppl.sampler.checkpoint`).
    batch_size
        Run the examples in batches of this many through one compiled function
        (the last batch is padded, so nothing recompiles): the accelerator holds
        one batch's chains at a time, and the result is identical to one batch
        (every random number depends on the example's index, not the batch).
        ``None``: all examples at once. With ``devices`` it must be a multiple of
        their number.

    Returns
    -------
    xarray.DataTree
        Groups ``rate_distortion`` (``rate``, ``distortion``, ``log_z`` over
        ``(example, beta)``), ``sample_stats``, ``observed_data`` and, with
        ``bdmc_betas``, ``bdmc``. Attributes record settings, versions, wall time
        and ``num_gradient_evaluations`` (all runs).

    Raises
    ------
    ValueError, TypeError
        For invalid models, data, schedules or settings, naming the culprit.
    InsufficientMemoryError
        When the chains and records would not fit in the memory available
        (``rdppl.sampler.memory``, a ``MemoryError``), naming the arguments to lower.

    Warns
    -----
    RDWarning
        When a diagnostic flags part of the result
        (:func:`rdppl.diagnostics.check_result`).
    RecompilationWarning
        A :class:`rdppl.RecompilationWarning` when closures of one program
        over new values have been compiled three times in this process; pass the
        changing values as ``model_args`` instead.
    """
    start = time.perf_counter()
    rng_key, kernel, num_chains, execution = validate_run_settings(
        rng_key, kernel, num_chains, chunk_size, progress, batch_size
    )
    bdmc_num_examples = validate_count(bdmc_num_examples, "bdmc_num_examples")
    betas = validate_schedule(schedule)
    checkpoint = as_checkpoint(checkpoint)
    target, data = prepare_model(
        model,
        data,
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    devices = validate_devices(devices, int(data.shape[0]), execution.batch_size)
    execution = execution._replace(devices=devices)
    if bdmc_betas is not None:
        validate_devices(devices, bdmc_num_examples, execution.batch_size)
        bdmc_betas = validate_bdmc_betas(target.structure, bdmc_betas, betas)
    capture_betas = _validate_posterior_betas(posterior_betas, betas)
    options = validate_protocol_options(
        tune_schedule, resample_threshold, kernel, preliminary_chains, num_chains,
        num_curve_points,
    )  # fmt: skip
    _check_memory(
        target, kernel, execution, num_chains, data, betas, capture_betas, bdmc_betas,
        bdmc_num_examples, options.num_curve_points,
    )  # fmt: skip
    settings = dict(
        schedule=betas,
        num_chains=num_chains,
        kernel=kernel,
        rng_key=rng_key,
        options=tuple(options),
        posterior_betas=capture_betas,
        bdmc_betas=bdmc_betas,
        bdmc_num_examples=bdmc_num_examples,
    )
    with holding(open_store(checkpoint, "rd_curve", target, data, settings)) as store:
        note_program(  # just before compiling: warns at the caller's line
            model,
            target.structure,
            data[0],
            model_args=model_args,
            model_kwargs=model_kwargs,
            distortion=distortion,
        )
        plan = _Plan(
            target, kernel, rng_key, data, betas, num_chains,
            execution._replace(checkpoint=store), options, capture_betas,
        )  # fmt: skip
        groups, reported_betas, cost, preliminary_cost = _forward(plan)
        if bdmc_betas is not None:
            groups, cost = _certify(plan, groups, cost, bdmc_betas, bdmc_num_examples)
    attrs = results.run_attrs(
        target.structure,
        kernel,
        rng_key=rng_key,
        num_chains=num_chains,
        betas=reported_betas,
        wall_time=time.perf_counter() - start,
        num_gradient_evaluations=cost,
        preliminary_gradient_evaluations=preliminary_cost,
        **options._asdict(),
    )
    return finished_tree(groups, attrs, "rd_curve")


class _Plan(NamedTuple):
    """What the runs of one validated ``rd_curve`` call share."""

    target: TracedModel
    kernel: MCMCKernel
    rng_key: jax.Array
    data: jax.Array
    betas: np.ndarray
    num_chains: int
    execution: runner.Execution
    options: protocol.ProtocolOptions
    capture_betas: np.ndarray


def _check_memory(
    target: TracedModel,
    kernel: MCMCKernel,
    execution: runner.Execution,
    num_chains: int,
    data: jax.Array,
    betas: np.ndarray,
    capture_betas: np.ndarray,
    bdmc_betas: np.ndarray | None,
    bdmc_num_examples: int,
    num_curve_points: int | None = None,
) -> None:
    """Refuse the reported run (and the BDMC run) if either cannot fit in memory."""
    runs = [("rd_curve", int(data.shape[0]), len(capture_betas))]
    if bdmc_betas is not None:
        runs.append(("rd_curve's BDMC run (bdmc_betas)", bdmc_num_examples, 0))
    for entry, num_examples, num_captures in runs:
        check_memory(
            entry,
            target.structure,
            kernel,
            execution,
            num_chains=num_chains,
            num_examples=num_examples,
            num_temperatures=len(betas) + len(capture_betas),
            num_captures=num_captures,
            num_curve_points=num_curve_points,
        )


def _forward(plan: _Plan) -> tuple[dict[str, xr.Dataset], np.ndarray, int, int]:
    """The reported forward run's groups, its schedule and its gradient costs."""
    run_key = jax.random.split(plan.rng_key)[0]
    reported = protocol.forward(
        plan.target,
        plan.kernel,
        rng_key=run_key,
        data=plan.data,
        betas=plan.betas,
        num_chains=plan.num_chains,
        execution=plan.execution,
        capture_betas=plan.capture_betas,
        options=plan.options,
    )
    run, betas, kernel = reported.run, reported.betas, plan.kernel
    curve = betas[run.kept]  # the temperatures the records were kept at
    groups = {
        "rate_distortion": results.rate_distortion_group(
            curve, run.distortion, run.log_z
        ),
        "sample_stats": results.sample_stats_group(
            curve,
            run,
            target_acceptance=kernel.target_acceptance,
            mass_matrix=kernel.mass_matrix,
            kernel=kernel,
        ),
        "observed_data": results.observed_group(
            plan.target.structure.observed, plan.data
        ),
    }
    if reported.capture:
        captured = betas[sorted(set(reported.capture))]
        posterior_key = jax.random.fold_in(plan.rng_key, POSTERIOR)
        groups.update(_posterior(plan.target, run, captured, plan.data, posterior_key))
    preliminary_cost = reported.preliminary_gradient_evaluations
    cost = run.num_gradient_evaluations + preliminary_cost
    return groups, betas, cost, preliminary_cost


def _certify(
    plan: _Plan,
    groups: dict[str, xr.Dataset],
    cost: int,
    bdmc_betas: np.ndarray,
    num_examples: int,
) -> tuple[dict[str, xr.Dataset], int]:
    """Add the BDMC certificate on data simulated at ``bdmc_betas`` (and its cost)."""
    certificate, bdmc_cost = run_bdmc(
        plan.target,
        plan.kernel,
        rng_key=jax.random.split(plan.rng_key)[1],
        betas=bdmc_betas,
        schedule=plan.betas,
        num_examples=num_examples,
        num_chains=plan.num_chains,
        template=plan.data[0],
        execution=plan.execution,
        options=plan.options,
    )
    groups = dict(
        groups,
        bdmc=certificate["bdmc"],
        bdmc_observed_data=certificate["observed_data"],
    )
    return groups, cost + bdmc_cost


def _validate_posterior_betas(
    posterior_betas: Sequence[float] | None, betas: np.ndarray
) -> np.ndarray:
    """The requested capture temperatures as a checked float64 array."""
    if posterior_betas is None:
        return np.zeros(0)
    requested = validate_temperatures(posterior_betas, "posterior_betas")
    if not np.all(np.isfinite(requested)):
        raise ValueError(
            f"posterior_betas must be finite numbers, got {requested.tolist()}"
        )
    outside = requested[(requested < 0) | (requested > betas[-1])]
    if outside.size:
        raise ValueError(
            f"posterior_betas {outside.tolist()} lie outside the schedule "
            f"[0, {betas[-1]}]"
        )
    return requested


@eqx.filter_jit
def _site_values(
    target: TracedModel, positions: jax.Array, data: jax.Array
) -> dict[str, jax.Array]:
    over_chains = jax.vmap(target.site_values, in_axes=(0, None))
    over_examples = jax.vmap(over_chains, in_axes=(0, 0))
    return jax.vmap(over_examples, in_axes=(0, None))(positions, data)


def _posterior(
    target: TracedModel,
    run: records.AISRun,
    captured_betas: np.ndarray,
    data: jax.Array,
    rng_key: jax.Array,
) -> dict[str, xr.Dataset]:
    """Groups ``posterior`` and ``weighted_posterior`` from captured chains."""
    dtype = jax.numpy.result_type(float)
    values = jax.device_get(
        _site_values(target, jax.numpy.asarray(run.captured_position, dtype), data)
    )
    # (captures, examples, chains, ...) -> (examples, captures, chains, ...)
    values = {name: np.swapaxes(np.asarray(v), 0, 1) for name, v in values.items()}
    log_weight = np.swapaxes(run.captured_log_weight, 0, 1)
    return results.posterior_groups(values, log_weight, captured_betas, rng_key=rng_key)
