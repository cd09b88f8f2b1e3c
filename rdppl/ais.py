"""Annealed importance sampling over a path of inverse temperatures.

The loop is written for one example (its chains vectorised with ``vmap``) and
vectorised over examples by :func:`run_segment`. One generic transition serves forward
AIS (MATH.md §2) and reverse AIS (§3): at each step, for a pair
``(beta_prev, beta_new)``,

1. the log prior, the distortion ``d`` and the gradient of the tempered log density at
   ``beta_new`` are computed in one forward and one backward pass (so no cached log
   density crosses a temperature change);
2. the estimates at ``beta_prev`` are recorded from the current weights and ``d``;
3. the log weights are updated: ``log w -= (beta_new - beta_prev) * d``;
4. every chain moves with a kernel that leaves ``pi_{beta_new}`` invariant.

Forward AIS walks ``(beta_0, beta_1), ..., (beta_{K-1}, beta_K)``; reverse AIS walks
``(beta_K, beta_K), (beta_K, beta_{K-1}), ..., (beta_2, beta_1)``. A final
:func:`finish` evaluates ``d`` once more, records the last estimates and applies the
last increment. The carry (:class:`AISState`) holds everything needed to continue, so
a schedule can be run in segments (progress, checkpoints) with identical results: the
random key of each step is derived from the step's global index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from rdppl import estimators
from rdppl.kernels import Kernel, adapt_step_size
from rdppl.model import ModelSpec

__all__ = [
    "AISState",
    "TemperatureRecord",
    "TransitionRecord",
    "init_from_prior",
    "init_at",
    "run_segment",
    "finish",
]


class AISState(NamedTuple):
    """Carry of the AIS loop for one example (a leading example axis when batched).

    Attributes
    ----------
    position
        Unconstrained latent vectors of the chains, shape ``(chains, dim)``.
    log_weight
        Log importance weights of the chains, shape ``(chains,)``.
    step_size
        Current step size (adapted in a preliminary run), shape ``()``.
    running_acceptance
        Exponentially averaged acceptance rate driving adaptation, shape ``()``.
    index
        Number of transitions done so far (used to derive random keys).
    """

    position: jax.Array
    log_weight: jax.Array
    step_size: jax.Array
    running_acceptance: jax.Array
    index: jax.Array


class TemperatureRecord(NamedTuple):
    """Estimates at one inverse temperature for one example."""

    log_z: jax.Array
    distortion: jax.Array
    effective_sample_size: jax.Array
    num_nonfinite: jax.Array


class TransitionRecord(NamedTuple):
    """Kernel diagnostics of the transition at one inverse temperature."""

    acceptance_rate: jax.Array
    step_size: jax.Array
    num_divergent: jax.Array
    num_gradient_evaluations: jax.Array


def _initial_state(
    position: jax.Array, step_size: float, target_acceptance: float
) -> AISState:
    dtype = position.dtype
    return AISState(
        position=position,
        log_weight=jnp.zeros(position.shape[:-1], dtype),
        step_size=jnp.asarray(step_size, dtype),
        # Start the running average at the target, as the reference code does, so
        # the first transitions do not all shrink the step size.
        running_acceptance=jnp.asarray(target_acceptance, dtype),
        index=jnp.zeros((), jnp.int32),
    )


@eqx.filter_jit
def init_from_prior(
    spec: ModelSpec,
    rng_key: jax.Array,
    data: jax.Array,
    num_chains: int,
    step_size: float,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    target_acceptance: float = 0.65,
) -> AISState:
    """Draw every chain of every example from the prior (unconstrained space).

    Parameters
    ----------
    spec
        The traced model and its distortion.
    rng_key
        Random key.
    data
        Examples, shape ``(examples, *observed_shape)``.
    num_chains
        Chains per example.
    step_size
        Initial step size.
    target_acceptance
        Initial value of the running acceptance rate (the kernel's target).

    Returns
    -------
    AISState
        Batched over examples.
    """
    num_examples = data.shape[0]
    keys = jax.random.split(rng_key, (num_examples, num_chains))

    def one_example(example_keys: jax.Array, example: jax.Array) -> AISState:
        position = jax.vmap(
            lambda key: spec.sample_prior_flat(key, example, model_args, model_kwargs)
        )(example_keys)
        position = position.astype(jnp.result_type(float))
        return _initial_state(position, step_size, target_acceptance)

    return jax.vmap(one_example)(keys, data)


def init_at(
    position: jax.Array, step_size: float, target_acceptance: float = 0.65
) -> AISState:
    """Start chains at given positions, shape ``(examples, chains, dim)``.

    Used by reverse AIS, which starts every chain at an exact posterior sample.
    """
    return jax.vmap(lambda p: _initial_state(p, step_size, target_acceptance))(position)


def _evaluate(
    spec: ModelSpec,
    position: jax.Array,
    beta: jax.Array,
    example: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Log prior, distortion and tempered gradient at ``beta`` for one chain."""

    def terms(u: jax.Array) -> tuple[jax.Array, jax.Array]:
        return spec.log_prior_and_distortion(u, example, model_args, model_kwargs)

    (log_prior, distortion), pullback = jax.vjp(terms, position)
    one = jnp.ones_like(log_prior)
    (gradient,) = pullback((one, -beta * jnp.ones_like(distortion)))
    return log_prior, distortion, gradient


def _estimates(
    log_weight: jax.Array, distortion: jax.Array, num_nonfinite: jax.Array
) -> TemperatureRecord:
    return TemperatureRecord(
        log_z=estimators.log_mean_exp(log_weight),
        distortion=estimators.weighted_mean(log_weight, distortion),
        effective_sample_size=estimators.effective_sample_size(log_weight),
        num_nonfinite=num_nonfinite,
    )


def _reweight(
    log_weight: jax.Array,
    log_prior: jax.Array,
    distortion: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Give zero weight to chains whose density is not finite, and count them."""
    nonfinite = ~(jnp.isfinite(distortion) & jnp.isfinite(log_prior))
    log_weight = jnp.where(nonfinite, -jnp.inf, log_weight)
    return log_weight, jnp.sum(nonfinite, dtype=jnp.int32)


def _transition(
    state: AISState,
    beta_prev: jax.Array,
    beta_new: jax.Array,
    replay_step_size: jax.Array,
    adapt: jax.Array,
    rng_key: jax.Array,
    example: jax.Array,
    *,
    spec: ModelSpec,
    kernel: Kernel,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[AISState, tuple[TemperatureRecord, TransitionRecord]]:
    """One AIS step for one example (see the module docstring).

    With ``adapt`` true the carried step size is used and then adapted (the
    preliminary run); otherwise ``replay_step_size`` is used and the carry's step
    size is left alone. ``adapt`` is traced, so both runs share one compilation.
    """
    log_prior, distortion, gradient = jax.vmap(
        lambda u: _evaluate(spec, u, beta_new, example, model_args, model_kwargs)
    )(state.position)
    log_weight, num_nonfinite = _reweight(state.log_weight, log_prior, distortion)
    record = _estimates(log_weight, distortion, num_nonfinite)
    increment = (beta_new - beta_prev) * distortion
    log_weight = jnp.where(jnp.isfinite(log_weight), log_weight - increment, -jnp.inf)

    step_size = jnp.where(adapt, state.step_size, replay_step_size)

    def logdensity_fn(u: jax.Array) -> jax.Array:
        prior_term, distortion_term = spec.log_prior_and_distortion(
            u, example, model_args, model_kwargs
        )
        return prior_term - beta_new * distortion_term

    num_chains = state.position.shape[0]
    keys = jax.random.split(jax.random.fold_in(rng_key, state.index), num_chains)
    position, info = jax.vmap(
        lambda key, u, value, grad: kernel.transition(
            key, u, value, grad, logdensity_fn, step_size
        )
    )(keys, state.position, log_prior - beta_new * distortion, gradient)

    # Chains with zero weight (non-finite density) neither drive the adaptation nor
    # count as divergent: they are reported once, in num_nonfinite.
    alive = jnp.isfinite(log_weight)
    accepted = jnp.where(alive, jnp.nan_to_num(info.acceptance_rate, nan=0.0), 0.0)
    acceptance = jnp.sum(accepted) / jnp.maximum(jnp.sum(alive), 1)
    adapted_step_size, adapted_running = adapt_step_size(
        kernel, state.step_size, state.running_acceptance, acceptance
    )
    transition = TransitionRecord(
        acceptance_rate=acceptance,
        step_size=step_size,
        num_divergent=jnp.sum(info.is_divergent & alive, dtype=jnp.int32),
        num_gradient_evaluations=num_chains
        + jnp.sum(info.num_gradient_evaluations, dtype=jnp.int32),
    )
    new_state = AISState(
        position,
        log_weight,
        jnp.where(adapt, adapted_step_size, state.step_size),
        jnp.where(adapt, adapted_running, state.running_acceptance),
        state.index + 1,
    )
    return new_state, (record, transition)


@eqx.filter_jit
def run_segment(
    spec: ModelSpec,
    kernel: Kernel,
    state: AISState,
    betas_prev: jax.Array,
    betas_new: jax.Array,
    step_sizes: jax.Array,
    active: jax.Array,
    adapt: jax.Array,
    rng_keys: jax.Array,
    data: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[AISState, tuple[TemperatureRecord, TransitionRecord]]:
    """Run AIS transitions for every example over a segment of the path.

    Parameters
    ----------
    spec, kernel
        Static: the traced model and the MCMC kernel.
    state
        Carry batched over examples.
    betas_prev, betas_new
        Inverse-temperature pairs of the segment, shape ``(steps,)``.
    step_sizes
        Frozen step sizes per step and example, shape ``(steps, examples)`` (ignored
        when ``adapt``).
    active
        Shape ``(steps,)``; inactive steps leave the carry unchanged and record
        zeros. Padding segments to one length lets every segment, run and schedule
        length share one compilation.
    adapt
        Scalar boolean: adapt the step sizes (the preliminary run).
    rng_keys
        One key per example.
    data
        Examples, shape ``(examples, *observed_shape)``.

    Returns
    -------
    state, (temperature_records, transition_records)
        The new carry and records with shape ``(steps, examples)``.
    """

    def move(carry: AISState, inputs: tuple) -> tuple[AISState, tuple]:
        beta_prev, beta_new, step_size = inputs
        return jax.vmap(
            lambda s, size, key, example: _transition(
                s,
                beta_prev,
                beta_new,
                size,
                adapt,
                key,
                example,
                spec=spec,
                kernel=kernel,
                model_args=model_args,
                model_kwargs=model_kwargs,
            )
        )(carry, step_size, rng_keys, data)

    def one_step(carry: AISState, inputs: tuple) -> tuple[AISState, tuple]:
        *move_inputs, is_active = inputs
        records_shape = jax.eval_shape(move, carry, tuple(move_inputs))[1]

        def skip(carry: AISState, _: tuple) -> tuple[AISState, tuple]:
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), records_shape)
            return carry, zeros

        return jax.lax.cond(is_active, move, skip, carry, tuple(move_inputs))

    return jax.lax.scan(one_step, state, (betas_prev, betas_new, step_sizes, active))


@eqx.filter_jit
def finish(
    spec: ModelSpec,
    state: AISState,
    beta_prev: jax.Array,
    beta_new: jax.Array,
    data: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> tuple[jax.Array, TemperatureRecord]:
    """Record the estimates at ``beta_prev`` and apply the last weight increment.

    Returns
    -------
    log_weight, record
        Final log weights ``(examples, chains)`` after the increment to ``beta_new``
        and the estimates at ``beta_prev`` ``(examples,)``.
    """

    def one_example(position: jax.Array, log_weight: jax.Array, example: jax.Array):
        log_prior, distortion = jax.vmap(
            lambda u: spec.log_prior_and_distortion(
                u, example, model_args, model_kwargs
            )
        )(position)
        log_weight, num_nonfinite = _reweight(log_weight, log_prior, distortion)
        record = _estimates(log_weight, distortion, num_nonfinite)
        increment = (beta_new - beta_prev) * distortion
        log_weight = jnp.where(
            jnp.isfinite(log_weight), log_weight - increment, -jnp.inf
        )
        return log_weight, record

    return jax.vmap(one_example)(state.position, state.log_weight, data)
