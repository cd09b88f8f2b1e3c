"""Log-likelihood estimators for models whose distortion is the NLL (docs/math.md §5).

``method`` selects the estimator, all returning the same ``log_likelihood`` group:

``"ais"``
    AIS over tempered likelihoods from ``beta = 0`` to ``1`` (Wu et al., 2017):
    ``log Zhat_1`` is a stochastic lower bound on ``log p(x)``.
``"importance"``
    Simple importance sampling from the prior, ``log mean_i p(x | z_i)`` with
    ``z_i ~ p(z)`` (the "KDE" baseline of Wu et al.; AIS with no intermediate
    temperature).
``"iwae"``
    The importance-weighted bound ``log mean_k p(x, z_k) / e(z_k | x)`` with
    ``z_k ~ e(. | x)``, given an encoder.
``"ais_encoder"``
    AIS from the encoder to the posterior: ``f_beta(z) = e(z|x)^(1-beta) p(x, z)^beta``.

An **encoder** is a function ``encoder(x) -> (loc, scale)`` of one example returning
the mean and standard deviation of a diagonal Gaussian over the model's latents *in
unconstrained space*, flattened in the order of the latent sites (for a model with one
real-valued vector site ``z`` this is simply ``q(z | x)``). It may be an Equinox module;
its arrays are traced, not baked into the compiled code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.scipy.special import logsumexp

from rdppl import results
from rdppl.entry import check_memory, finished_tree, holding
from rdppl.numerics.schedules import sigmoid_schedule, validate_schedule
from rdppl.program.decorator import Model, TracedModel
from rdppl.program.prepare import prepare_model
from rdppl.program.recompile import note_program
from rdppl.sampler import protocol, runner
from rdppl.sampler.checkpoint import Checkpoint, as_checkpoint, open_store
from rdppl.sampler.devices import shard_examples, validate_devices
from rdppl.sampler.kernels import MCMCKernel
from rdppl.validation import (
    validate_count,
    validate_encoder,
    validate_protocol_options,
    validate_run_settings,
)

__all__ = ["METHODS", "encoder_target", "log_likelihood"]

METHODS = ("ais", "importance", "iwae", "ais_encoder")
Encoder = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


class _EncoderStart(eqx.Module):
    """The functions of an encoder-started target (docs/math.md §5.4)."""

    base: TracedModel
    encoder: Encoder

    def _gaussian(self, example: jax.Array) -> tuple[jax.Array, jax.Array]:
        loc, scale = self.encoder(example)
        return jnp.asarray(loc), jnp.asarray(scale)

    def initial(self, rng_key: jax.Array, example: jax.Array) -> jax.Array:
        loc, scale = self._gaussian(example)
        return loc + scale * jax.random.normal(rng_key, loc.shape, loc.dtype)

    def log_terms(
        self, position: jax.Array, example: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        loc, scale = self._gaussian(example)
        standardized = (position - loc) / scale
        log_encoder = jnp.sum(
            -0.5 * standardized**2 - jnp.log(scale) - 0.5 * jnp.log(2.0 * jnp.pi)
        )
        log_prior, nll = self.base.log_prior_and_distortion(position, example)
        return log_encoder, log_encoder - log_prior + nll


def encoder_target(target: TracedModel, encoder: Encoder) -> TracedModel:
    """The model re-expressed so that AIS starts from an encoder instead of the prior.

    Its starting density is ``e(u | x)`` and its distortion is
    ``log e(u | x) - log p(u) - log p(x | u)``, so that the tempered density at
    ``beta`` is ``e^(1 - beta) p(x, u)^beta`` and ``Z_1 = p(x)``.
    """
    start = _EncoderStart(target, encoder)
    return TracedModel(
        log_terms=start.log_terms,
        initial=start.initial,
        constrain=target.constrain,
        simulator=None,
        structure=target.structure,
    )


@eqx.filter_jit
def _importance_sampling(
    target: TracedModel,
    rng_key: jax.Array,
    data: jax.Array,
    num_samples: int,
    batch_size: int,
) -> tuple[jax.Array, jax.Array]:
    """``log mean exp(-d(u_i))`` with ``u_i`` from the target's starting distribution.

    Samples are drawn in batches (bounded memory); returns the estimate and the
    effective sample size per example.
    """
    num_batches = -(-num_samples // batch_size)

    def one_example(key: jax.Array, example: jax.Array) -> tuple[jax.Array, jax.Array]:
        def batch(carry: tuple, index: jax.Array) -> tuple[tuple, None]:
            total, total_squared = carry
            keys = jax.random.split(jax.random.fold_in(key, index), batch_size)

            def log_weight(k: jax.Array) -> jax.Array:
                u = target.sample_initial(k, example)
                _, distortion = target.log_prior_and_distortion(u, example)
                return -distortion

            values = jax.vmap(log_weight)(keys)
            valid = index * batch_size + jnp.arange(batch_size) < num_samples
            values = jnp.where(valid & ~jnp.isnan(values), values, -jnp.inf)
            return (
                jnp.logaddexp(total, logsumexp(values)),
                jnp.logaddexp(total_squared, logsumexp(2.0 * values)),
            ), None

        start = jnp.full((), -jnp.inf, jnp.result_type(float))
        (total, total_squared), _ = jax.lax.scan(
            batch, (start, start), jnp.arange(num_batches)
        )
        return total - jnp.log(num_samples), jnp.exp(2.0 * total - total_squared)

    keys = jax.random.split(rng_key, data.shape[0])
    return jax.vmap(one_example)(keys, data)


def log_likelihood(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    rng_key: jax.Array,
    method: str = "ais",
    schedule: Any = None,
    num_temperatures: int = 1000,
    num_chains: int = 16,
    num_samples: int | None = None,
    encoder: Encoder | None = None,
    distortion: str = "nll",
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
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    batch_size: int | None = None,
) -> xr.DataTree:
    """Estimate ``log p(x)`` per example.

    Parameters
    ----------
    model
        A :func:`rdppl.model` program (or a plain one with ``observed=``); the
        distortion is the observed site's negative log-likelihood.
    data
        Examples, ``(examples, *observed_shape)``.
    rng_key
        JAX random key.
    method
        ``"ais"``, ``"importance"``, ``"iwae"`` or ``"ais_encoder"`` (module docstring).
    num_temperatures
        AIS steps of the default sigmoid schedule (radius 4) from 0 to 1.
    num_chains
        AIS chains per example.
    num_samples
        Samples per example for ``"importance"`` and ``"iwae"`` (default
        ``num_chains``).
    encoder
        ``x -> (loc, scale)`` for ``"iwae"`` and ``"ais_encoder"``.
    schedule
        An explicit AIS schedule ending at 1 (overrides ``num_temperatures``).
    distortion
        Must be ``"nll"``: ``log p(x)`` is defined by the observed site's
        likelihood.
    kernel, observed, reconstruction, model_args, model_kwargs, chunk_size,
    progress, devices, tune_schedule, resample_threshold, preliminary_chains,
    checkpoint, batch_size
        As for :func:`rdppl.rd_curve` (``tune_schedule``, ``resample_threshold``,
        ``preliminary_chains`` and ``checkpoint`` for the AIS methods).

    Returns
    -------
    xarray.DataTree
        Group ``log_marginal_likelihood`` (PyMC's name for ``log p(x)``
        estimates; ArviZ's ``log_likelihood`` group means pointwise
        log-likelihoods) with ``log_marginal_likelihood`` and ``importance_ess``
        over ``(example,)``, and for the AIS methods the final weights'
        ``pareto_khat`` and the run's ``sample_stats`` over ``(example, beta)``
        (as :func:`rdppl.rd_curve`'s); attributes ``method``,
        ``num_gradient_evaluations`` and ``num_log_density_evaluations`` (cost).

    Warns
    -----
    RDWarning
        When a diagnostic flags the run (:func:`rdppl.diagnostics.check_result`).
    """
    start = time.perf_counter()
    _check_method(method, distortion)
    rng_key, kernel, num_chains, execution = validate_run_settings(
        rng_key, kernel, num_chains, chunk_size, progress, batch_size
    )
    options = validate_protocol_options(
        tune_schedule, resample_threshold, kernel, preliminary_chains, num_chains
    )
    checkpoint = as_checkpoint(checkpoint)
    target, data = prepare_model(
        model,
        data,
        distortion="nll",
        observed=observed,
        reconstruction=reconstruction,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    structure = target.structure
    devices = validate_devices(devices, int(data.shape[0]), execution.batch_size)
    execution = execution._replace(devices=devices)
    if method in ("iwae", "ais_encoder"):
        target = encoder_target(target, validate_encoder(encoder, structure, data[0]))
    elif encoder is not None:
        raise ValueError(f"method {method!r} does not use an encoder; got one")
    if method in ("ais", "ais_encoder"):
        betas = _likelihood_schedule(schedule, num_temperatures)
        check_memory(
            "log_likelihood",
            structure,
            kernel,
            execution,
            num_chains=num_chains,
            num_examples=int(data.shape[0]),
            num_temperatures=len(betas),
            temperatures_argument="num_temperatures"
            if schedule is None
            else "schedule",
        )
    else:
        num_samples = validate_count(
            num_chains if num_samples is None else num_samples, "num_samples"
        )
    note_program(  # before compiling either estimator: warns at the caller's line
        model,
        structure,
        data[0],
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    plan = _Plan(method, target, kernel, rng_key, data, num_chains, execution, options)
    if method in ("ais", "ais_encoder"):
        estimate, ess, gradient_cost, extra, stats = _ais_method(
            plan, betas, checkpoint
        )
    else:
        estimate, ess = _importance_sampling(
            target,
            rng_key,
            shard_examples(data, devices),
            num_samples,
            min(num_samples, 1024),
        )
        betas, gradient_cost, stats = None, 0, None
        extra = {
            "num_samples": num_samples,
            "num_log_density_evaluations": num_samples * int(data.shape[0]),
        }
    attrs = results.run_attrs(
        structure,
        kernel,
        rng_key=rng_key,
        num_chains=num_chains,
        betas=betas,
        wall_time=time.perf_counter() - start,
        num_gradient_evaluations=gradient_cost,
        method=method,
        **extra,
    )
    return finished_tree(_groups(method, estimate, ess, stats), attrs, "log_likelihood")


def _check_method(method: Any, distortion: Any) -> None:
    """A known method, and the distortion that defines ``log p(x)``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if distortion != "nll":
        raise ValueError(
            f"log_likelihood needs distortion='nll' (log p(x) is defined by the "
            f"observed site's likelihood), got {distortion!r}"
        )


class _Plan(NamedTuple):
    """One validated ``log_likelihood`` call."""

    method: str
    target: TracedModel
    kernel: MCMCKernel
    rng_key: jax.Array
    data: jax.Array
    num_chains: int
    execution: runner.Execution
    options: protocol.ProtocolOptions


def _ais_method(
    plan: _Plan, betas: np.ndarray, checkpoint: Checkpoint | None
) -> tuple[np.ndarray, np.ndarray, int, dict[str, int], xr.Dataset]:
    """An AIS method, checkpointed when asked (its lock held for the run only)."""
    settings = dict(
        schedule=betas,
        num_chains=plan.num_chains,
        kernel=plan.kernel,
        rng_key=plan.rng_key,
        options=tuple(plan.options),
    )
    store = open_store(
        checkpoint, f"log_likelihood({plan.method})", plan.target, plan.data, settings
    )
    with holding(store):
        estimate, ess, cost, extra, stats = _ais_estimate(
            plan.target,
            plan.kernel,
            plan.rng_key,
            plan.data,
            betas,
            plan.num_chains,
            plan.execution._replace(checkpoint=store),
            plan.options,
        )
    extra = dict(extra, preliminary_chains=plan.options.preliminary_chains)
    return estimate, ess, cost, extra, stats


def _groups(
    method: str, estimate: np.ndarray, ess: np.ndarray, stats: xr.Dataset | None
) -> dict[str, xr.Dataset]:
    """Group ``log_marginal_likelihood`` and, for the AIS methods, ``sample_stats``."""
    groups = {
        "log_marginal_likelihood": results.log_marginal_likelihood_group(
            estimate,
            ess,
            method=method,
            pareto_khat=None if stats is None else stats["pareto_khat"][:, -1],
        )
    }
    if stats is not None:
        groups["sample_stats"] = stats
    return groups


def _ais_estimate(
    target: TracedModel,
    kernel: MCMCKernel,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    num_chains: int,
    execution: runner.Execution,
    options: protocol.ProtocolOptions = protocol.DEFAULT_OPTIONS,
) -> tuple[np.ndarray, np.ndarray, int, dict[str, int], xr.Dataset]:
    """``log Zhat_1`` per example, its ESS, the cost, counts and ``sample_stats``."""
    forward = protocol.forward(
        target,
        kernel,
        rng_key=rng_key,
        data=data,
        betas=betas,
        num_chains=num_chains,
        execution=execution,
        options=options,
    )
    run, preliminary_cost = forward.run, forward.preliminary_gradient_evaluations
    cost = run.num_gradient_evaluations + preliminary_cost
    extra = {
        "num_log_density_evaluations": cost,
        "num_divergent": int(run.num_divergent.sum()),
        "num_nonfinite": int(run.num_nonfinite[:, -1].sum()),
    }
    stats = results.sample_stats_group(
        forward.betas[run.kept],
        run,
        target_acceptance=kernel.target_acceptance,
        mass_matrix=kernel.mass_matrix,
        kernel=kernel,
    )
    return run.log_z[:, -1], run.effective_sample_size[:, -1], cost, extra, stats


def _likelihood_schedule(schedule: Any, num_temperatures: int) -> np.ndarray:
    if schedule is None:
        return sigmoid_schedule(num_temperatures, beta_max=1.0)
    betas = validate_schedule(schedule)
    if betas[-1] != 1.0:
        raise ValueError(
            f"a log-likelihood schedule must end at 1, got schedule[-1] = {betas[-1]}"
        )
    return betas
