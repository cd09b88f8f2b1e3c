"""Annealed importance sampling for one example, in BlackJAX's shape.

:func:`init` builds the state from starting positions; :func:`build_kernel` returns a
pure ``step(rng_key, state, example, beta_prev, beta_new, step_size,
inverse_mass_matrix) -> (state, info)`` for a
:class:`~rdppl.program.decorator.TracedModel` and an MCMC kernel; :func:`finish` applies
the last weight increment. The caller writes the ``lax.scan`` and the ``vmap``
(:mod:`rdppl.sampler.runner`). One generic step serves forward AIS (docs/math.md §2) and
reverse AIS (§4). For a pair ``(beta_prev, beta_new)``:

1. the log prior, the distortion ``d`` and the gradient of the tempered log density at
   ``beta_new``: computed in one forward and one backward pass, or, for kernels that
   hand on an :class:`Evaluation` (the gradients of the log prior and of ``d`` apart,
   :attr:`~rdppl.sampler.kernels.MCMCKernel.caches_gradients`), read from the last
   transition's, at no cost;
2. the estimates at ``beta_prev`` are computed from the current weights and ``d``
   (:func:`rdppl.estimators.temperature_estimates`) and recorded in the info;
3. the log weights are updated: ``log w -= (beta_new - beta_prev) * d``;
4. optionally, the chains are resampled (AIS becomes a sequential Monte Carlo
   sampler, docs/math.md §3.7): when their importance ESS is below
   ``resample_threshold`` times the number of chains, they are drawn by systematic
   resampling and all get the log mean weight, so ``log Z`` is unchanged;
5. every chain moves with a kernel that leaves ``pi_{beta_new}`` invariant.

Forward AIS walks ``(beta_0, beta_1), ..., (beta_{K-1}, beta_K)``; reverse AIS walks
``(beta_K, beta_K), (beta_K, beta_{K-1}), ..., (beta_2, beta_1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.smc.resampling import systematic

from rdppl.numerics import estimators
from rdppl.program.decorator import TracedModel
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.kernels.base import Evaluation

__all__ = [
    "AISInfo",
    "AISState",
    "Evaluation",
    "build_kernel",
    "evaluate",
    "finish",
    "init",
]

# fold_in constant of the resampling key (the moves use the step's key unchanged)
RESAMPLING_STREAM = 0x5E5A


class AISState(NamedTuple):
    """Chains of one example (a leading example axis when batched).

    The log weight of chain ``i`` is ``log_offset + log_offset_error +
    log_weight[i]``: the factor common to all chains is kept apart, as a compensated
    sum, so that the relative log weights stay small and normalising them loses no
    precision in float32, however large ``|log w|`` grows (docs/math.md §2.4).

    Attributes
    ----------
    position
        Unconstrained latent vectors of the chains, shape ``(chains, dim)``.
    momentum
        Whitened momenta ``(chains, dim)``, standard normal under the extended
        target; carried across temperatures by Hamiltonian AIS
        (``HMC(persistence=...)``), unused by other kernels.
    log_weight
        Log weights relative to the offset (the largest finite one is 0),
        shape ``(chains,)``.
    log_offset, log_offset_error
        The common log factor and the rounding error of its running sum, shape
        ``()``.
    acceptance_level
        ``(chains,)`` values uniform on ``[-1, 1)`` under the extended target: the
        Metropolis tests of ``HMC(acceptance_drift=...)`` compare with their
        magnitude and carry them on (docs/math.md §3.5); unused by other kernels.
    """

    position: jax.Array
    momentum: jax.Array
    log_weight: jax.Array
    log_offset: jax.Array
    log_offset_error: jax.Array
    acceptance_level: jax.Array


class AISInfo(NamedTuple):
    """What one step records: estimates at ``beta_prev``, then the move's diagnostics.

    ``acceptance_rate`` is the mean over the chains with finite weight; chains whose
    density is not finite are counted once, in ``num_nonfinite``, and never as
    divergent. ``log_z`` is relative to the state's offset: the estimate of
    ``log Z`` is ``log_offset + log_offset_error + log_z``, to be summed in float64.
    """

    log_z: jax.Array
    distortion: jax.Array
    distortion_variance: jax.Array
    effective_sample_size: jax.Array
    num_nonfinite: jax.Array
    pareto_khat: jax.Array
    log_offset: jax.Array
    log_offset_error: jax.Array
    acceptance_rate: jax.Array
    num_divergent: jax.Array
    num_gradient_evaluations: jax.Array
    resampled: jax.Array


def init(position: jax.Array, rng_key: jax.Array) -> AISState:
    """Start chains at ``position`` ``(chains, dim)`` with zero log weights.

    ``position`` must be drawn from the starting distribution; the momenta
    (standard normal) and the acceptance levels (uniform on ``[-1, 1)``) from theirs,
    with ``rng_key``.
    """
    chains, dtype = position.shape[:-1], position.dtype
    zero = jnp.zeros((), dtype)
    momentum = jax.random.normal(rng_key, position.shape, dtype)
    level = jax.random.uniform(jax.random.fold_in(rng_key, 1), chains, dtype, -1.0, 1.0)
    return AISState(position, momentum, jnp.zeros(chains, dtype), zero, zero, level)


def _compensated_add(
    total: jax.Array, error: jax.Array, value: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``total + value`` with its rounding error carried in ``error`` (TwoSum)."""
    new_total = total + value
    part = new_total - total
    rounding = (total - (new_total - part)) + (value - part)
    return new_total, error + rounding


def evaluate(
    target: TracedModel, position: jax.Array, example: jax.Array
) -> Evaluation:
    """The log prior and the distortion at one chain's position, with their gradients.

    Two gradients of two scalar functions (the prior's is cheap: the decoder is dead
    code in it), so the tempered gradient at any ``beta`` follows without another
    evaluation.
    """

    def part(index: int) -> Callable[[jax.Array], jax.Array]:
        return lambda u: target.log_prior_and_distortion(u, example)[index]

    log_prior, prior_grad = jax.value_and_grad(part(0))(position)
    distortion, distortion_grad = jax.value_and_grad(part(1))(position)
    return Evaluation(log_prior, distortion, prior_grad, distortion_grad)


def _evaluate(
    target: TracedModel, position: jax.Array, example: jax.Array, beta: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Log prior, distortion and tempered gradient at ``beta`` for one chain."""

    def terms(u: jax.Array) -> tuple[jax.Array, jax.Array]:
        return target.log_prior_and_distortion(u, example)

    (log_prior, distortion), pullback = jax.vjp(terms, position)
    (gradient,) = pullback(
        (jnp.ones_like(log_prior), -beta * jnp.ones_like(distortion))
    )
    return log_prior, distortion, gradient


def _reweight(
    state: AISState,
    log_prior: jax.Array,
    distortion: jax.Array,
    beta_prev: jax.Array,
    beta_new: jax.Array,
) -> tuple[AISState, estimators.TemperatureEstimates]:
    """Estimates at ``beta_prev``, then the increment to ``beta_new``.

    Chains whose density is not finite get zero weight and are counted. After the
    increment the largest relative log weight moves into the offset.
    """
    nonfinite = ~(jnp.isfinite(distortion) & jnp.isfinite(log_prior))
    log_weight = jnp.where(nonfinite, -jnp.inf, state.log_weight)
    estimates = estimators.temperature_estimates(
        log_weight, distortion, jnp.sum(nonfinite, dtype=jnp.int32)
    )
    increment = (beta_new - beta_prev) * distortion
    finite = jnp.isfinite(log_weight)
    log_weight = jnp.where(finite, log_weight - increment, -jnp.inf)
    shift = jnp.max(jnp.where(finite, log_weight, -jnp.inf))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    offset, error = _compensated_add(state.log_offset, state.log_offset_error, shift)
    return state._replace(
        log_weight=log_weight - shift, log_offset=offset, log_offset_error=error
    ), estimates


def _resampling(
    rng_key: jax.Array, log_weight: jax.Array, threshold: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Systematic resampling when the importance ESS is below ``threshold * M``.

    The ``M`` chains are resampled within :func:`resampling_blocks` of consecutive
    chains (two halves from 4 chains on), each block from its own weights, and every
    chain gets its block's log mean weight: the blocks stay independent sequential
    Monte Carlo samplers (the two ArviZ chains of group ``posterior`` are drawn from
    them, so R-hat compares independent estimates), and the estimate of ``log Z``,
    the log mean weight over all chains, is unchanged (docs/math.md §3.7). Returns
    the chains' ancestor indices (``arange(M)`` when not resampling), their new log
    weights and whether they were resampled. A threshold of ``inf`` always
    resamples, ``0`` never; chains that are all dead are left alone.
    """
    num_chains = log_weight.shape[0]
    alive = jnp.any(jnp.isfinite(log_weight))
    ess = estimators.effective_sample_size(log_weight)
    resample = alive & (ess < threshold * num_chains)
    blocks, size = resampling_blocks(num_chains)
    padded = jnp.concatenate(
        [
            log_weight,
            jnp.full((blocks * size - num_chains,), -jnp.inf, log_weight.dtype),
        ]
    ).reshape(blocks, size)
    offsets = size * jnp.arange(blocks, dtype=jnp.int32)
    members = jnp.minimum(size, num_chains - offsets)

    def one_block(key, block_log_weight, count):
        weights = jnp.nan_to_num(estimators.normalized_weights(block_log_weight))
        ancestors = systematic(key, weights, size).astype(jnp.int32)
        block_alive = jnp.any(jnp.isfinite(block_log_weight))
        ancestors = jnp.where(
            block_alive,
            jnp.minimum(ancestors, count - 1),
            jnp.arange(size, dtype=jnp.int32),
        )
        # the mean over the block's own chains (the padding has zero weight)
        total = jax.scipy.special.logsumexp(block_log_weight) - jnp.log(
            count.astype(block_log_weight.dtype)
        )
        equal = jnp.where(block_alive, total, -jnp.inf)
        return ancestors, jnp.where(block_alive, equal, block_log_weight)

    keys = jax.random.split(rng_key, blocks)
    ancestors, equal = jax.vmap(one_block)(keys, padded, members)
    ancestors = (ancestors + offsets[:, None]).reshape(-1)
    equal = jnp.broadcast_to(equal, (blocks, size)).reshape(-1)
    index = jnp.where(
        resample, ancestors[:num_chains], jnp.arange(num_chains, dtype=jnp.int32)
    )
    return index, jnp.where(resample, equal[:num_chains], log_weight), resample


def resampling_blocks(num_chains: int) -> tuple[int, int]:
    """Blocks of consecutive chains resampled apart, and their size.

    Two from 4 chains on (the last may be one smaller), as the blocks of group
    ``posterior``; one below.
    """
    blocks = 2 if num_chains >= 4 else 1
    return blocks, -(-num_chains // blocks)


def build_kernel(
    target: TracedModel, kernel: MCMCKernel
) -> Callable[..., tuple[AISState, AISInfo]]:
    """Build the AIS step of ``target`` with MCMC moves from ``kernel``.

    Parameters
    ----------
    target
        The traced model (or any :class:`~rdppl.program.decorator.TracedModel`).
    kernel
        The MCMC kernel.

    Returns
    -------
    step
        ``step(rng_key, state, example, beta_prev, beta_new, step_size,
        inverse_mass_matrix, resample_threshold=None) -> (AISState, AISInfo)`` for
        one example's chains (the inverse mass matrix is ignored by kernels with
        ``mass_matrix="identity"``; the chains are resampled before they move when
        their importance ESS is below ``resample_threshold`` times their number;
        ``None`` leaves resampling out of the step). With ``cache=`` (the
        chains' :class:`Evaluation` at their positions) the kernel's
        ``cached_transition`` moves them and the step returns ``(AISState, AISInfo,
        Evaluation)``.
    """

    def step(
        rng_key: jax.Array,
        state: AISState,
        example: jax.Array,
        beta_prev: jax.Array,
        beta_new: jax.Array,
        step_size: jax.Array,
        inverse_mass_matrix: jax.Array,
        resample_threshold: jax.Array | float | None = None,
        cache: Evaluation | None = None,
    ) -> tuple[AISState, AISInfo] | tuple[AISState, AISInfo, Evaluation]:
        if cache is None:
            log_prior, distortion, gradient = jax.vmap(
                lambda u: _evaluate(target, u, example, beta_new)
            )(state.position)
        else:  # the chains' own evaluation, handed on by the last transition
            log_prior, distortion = cache.log_prior, cache.distortion
            gradient = cache.prior_grad - beta_new * cache.distortion_grad
        reweighted, estimates = _reweight(
            state, log_prior, distortion, beta_prev, beta_new
        )
        resampled = jnp.asarray(False)
        if resample_threshold is not None:  # None: no resampling code at all
            index, log_weight, resampled = _resampling(
                jax.random.fold_in(rng_key, RESAMPLING_STREAM),
                reweighted.log_weight,
                jnp.asarray(resample_threshold, reweighted.log_weight.dtype),
            )
            reweighted = reweighted._replace(
                position=reweighted.position[index],
                momentum=reweighted.momentum[index],
                acceptance_level=reweighted.acceptance_level[index],
                log_weight=log_weight,
            )
            log_prior, distortion, gradient = (
                log_prior[index],
                distortion[index],
                gradient[index],
            )
            if cache is not None:
                cache = jax.tree.map(lambda leaf: leaf[index], cache)
        num_chains = state.position.shape[0]
        keys = jax.random.split(rng_key, num_chains)
        if cache is not None:
            position, momentum, cache, info = jax.vmap(
                lambda key, u, p, evaluation, level: kernel.cached_transition(
                    key,
                    u,
                    p,
                    evaluation,
                    lambda v: evaluate(target, v, example),
                    beta_new,
                    step_size,
                    inverse_mass_matrix,
                    acceptance_level=level,
                )
            )(keys, *reweighted[:2], cache, reweighted.acceptance_level)
            record = _record(estimates, state, reweighted, info, resampled, 0)
            moved = _moved(reweighted, position, momentum, info)
            return moved, record, cache
        logdensity_fn = target.logdensity_fn(example, beta_new)
        position, momentum, info = jax.vmap(
            lambda key, u, p, value, grad: kernel.transition(
                key, u, p, value, grad, logdensity_fn, step_size, inverse_mass_matrix
            )
        )(
            keys,
            reweighted.position,
            reweighted.momentum,
            log_prior - beta_new * distortion,
            gradient,
        )
        record = _record(estimates, state, reweighted, info, resampled, num_chains)
        return _moved(reweighted, position, momentum, info), record

    return step


def _moved(
    state: AISState, position: jax.Array, momentum: jax.Array, info: Any
) -> AISState:
    """The chains after their moves, with a move's weight term where it has one."""
    moved = state._replace(position=position, momentum=momentum)
    if info.acceptance_level is not None:  # carried on by the kernel
        moved = moved._replace(acceptance_level=info.acceptance_level)
    if info.log_weight_increment is None:  # moves that leave their target invariant
        return moved
    return moved._replace(log_weight=state.log_weight + info.log_weight_increment)


def _record(
    estimates: estimators.TemperatureEstimates,
    state: AISState,
    reweighted: AISState,
    info: Any,
    resampled: jax.Array,
    evaluations: int,
) -> AISInfo:
    """One step's record; ``evaluations``: gradients spent before the moves."""
    alive = jnp.isfinite(reweighted.log_weight)
    accepted = jnp.where(alive, jnp.nan_to_num(info.acceptance_rate, nan=0.0), 0.0)
    return AISInfo(
        *estimates,
        log_offset=state.log_offset,
        log_offset_error=state.log_offset_error,
        acceptance_rate=jnp.sum(accepted)
        / jnp.maximum(jnp.sum(alive, dtype=accepted.dtype), 1.0),
        num_divergent=jnp.sum(info.is_divergent & alive, dtype=jnp.int32),
        num_gradient_evaluations=evaluations
        + jnp.sum(info.num_gradient_evaluations, dtype=jnp.int32),
        resampled=resampled,
    )


def finish(
    target: TracedModel,
    state: AISState,
    example: jax.Array,
    beta_prev: jax.Array,
    beta_new: jax.Array,
) -> tuple[AISState, estimators.TemperatureEstimates]:
    """Record the estimates at ``beta_prev`` and apply the last weight increment.

    Returns
    -------
    state, estimates
        The chains with their final weights after the increment to ``beta_new``,
        and the estimates at ``beta_prev`` (relative to ``state``'s offset before
        the increment, which the caller adds).
    """
    log_prior, distortion = jax.vmap(
        lambda u: target.log_prior_and_distortion(u, example)
    )(state.position)
    return _reweight(state, log_prior, distortion, beta_prev, beta_new)
