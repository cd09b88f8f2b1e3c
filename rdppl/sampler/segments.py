"""One compiled segment of the temperature path: every example and chain at once.

:func:`run_segment` scans :func:`rdppl.sampler.ais.build_kernel`'s step over a
segment of steps (padded to a fixed length with inactive steps, so runs of any length
share one compilation), adapting the step sizes and mass matrices (the preliminary run)
or replaying them (reported runs). :func:`segment_inputs` builds a segment's per-step
arrays, :func:`finish` the last weight increment; the progress bar is moved from inside
the compiled loop by a host callback every :data:`PROGRESS_STRIDE` temperatures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from rdppl.numerics import estimators
from rdppl.program.decorator import TracedModel
from rdppl.sampler import ais
from rdppl.sampler.adaptation import StepSizeState
from rdppl.sampler.devices import shard_examples
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.records import Tuning

__all__ = [
    "PROGRESS_STRIDE",
    "AdaptationState",
    "finish",
    "interactive",
    "moving",
    "run_segment",
    "segment_inputs",
    "segments",
]


def segments(
    num_steps: int, chunk_size: int | None, boundaries: Sequence[int] = ()
) -> list[slice]:
    """Consecutive step ranges of at most ``chunk_size``, also cut at ``boundaries``."""
    size = num_steps if chunk_size is None else max(1, int(chunk_size))
    cuts = set(range(0, num_steps, size)) | {b for b in boundaries if 0 < b < num_steps}
    starts = sorted(cuts)
    return [
        slice(start, stop)
        for start, stop in zip(starts, [*starts[1:], num_steps], strict=True)
    ]


def _pad(values: np.ndarray, length: int, fill: Any) -> np.ndarray:
    """Extend ``values`` along its first axis to ``length`` with ``fill``."""
    padding = np.full((length - len(values), *values.shape[1:]), fill, values.dtype)
    return np.concatenate([values, padding])


class AdaptationState(NamedTuple):
    """The preliminary run's adapted settings of one example."""

    step_size: StepSizeState
    inverse_mass_matrix: jax.Array


@eqx.filter_jit
def run_segment(
    target: TracedModel,
    kernel: MCMCKernel,
    carry: tuple[ais.AISState, AdaptationState],
    inputs: tuple[jax.Array, ...],
    adapt: jax.Array,
    rng_keys: jax.Array,
    data: jax.Array,
    report_progress: bool = False,
    resampling: bool = True,
) -> tuple[
    tuple[ais.AISState, AdaptationState], tuple[ais.AISInfo, jax.Array, jax.Array]
]:  # records: info, step sizes and inverse mass matrices used
    """Scan AIS steps over a segment, every example at once.

    ``inputs`` holds per-step arrays ``(beta_prev, beta_new, replay_step_sizes
    (steps, examples), replay_inverse_mass_matrices (steps, examples, *shape),
    resample_thresholds (steps, examples), step_index, active)``. With ``adapt``
    the carried settings are used and
    updated (the preliminary run); otherwise the replayed ones are used. ``adapt``
    is traced, so both runs share one compilation. Inactive (padding) steps leave
    the carry unchanged and record zeros.
    """
    step = ais.build_kernel(target, kernel)
    step_size_rule = kernel.step_size_adaptation()
    mass_matrix_rule = kernel.mass_matrix_adaptation()

    def one_example(
        state,
        adapted,
        cache,
        replay,
        replay_imm,
        threshold,
        key,
        example,
        beta_prev,
        beta_new,
        index,
    ):
        step_size = jnp.where(adapt, adapted.step_size.step_size, replay)
        inverse_mass_matrix = jnp.where(adapt, adapted.inverse_mass_matrix, replay_imm)
        state, info, *handed_on = step(
            jax.random.fold_in(key, index),
            state,
            example,
            beta_prev,
            beta_new,
            step_size,
            inverse_mass_matrix,
            threshold if resampling else None,  # static: no code when never used
            **({"cache": cache} if kernel.caches_gradients else {}),
        )
        cache = handed_on[0] if handed_on else cache
        updated = AdaptationState(
            step_size_rule.update(adapted.step_size, info.acceptance_rate),
            mass_matrix_rule.update(
                adapted.inverse_mass_matrix, state.position, state.log_weight
            ),
        )
        adapted = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), updated, adapted)
        return (state, adapted, cache), (info, step_size, inverse_mass_matrix)

    def move(carry, step_inputs):
        beta_prev, beta_new, replay, replay_imm, thresholds, index = step_inputs
        return jax.vmap(
            one_example, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, None, None, None)
        )(
            *carry,
            replay,
            replay_imm,
            thresholds,
            rng_keys,
            data,
            beta_prev,
            beta_new,
            index,
        )

    def one_step(carry, step_inputs):
        *move_inputs, is_active = step_inputs
        records_shape = jax.eval_shape(move, carry, tuple(move_inputs))[1]

        def skip(carry, _):
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), records_shape)
            return carry, zeros

        carry, records = jax.lax.cond(is_active, move, skip, carry, tuple(move_inputs))
        if report_progress:  # static: no callback at all without a progress bar
            index = move_inputs[-1]
            jax.lax.cond(
                is_active & (index % PROGRESS_STRIDE == PROGRESS_STRIDE - 1),
                lambda i: jax.debug.callback(_report_progress, i),
                lambda i: None,
                index,
            )
        return carry, records

    if not kernel.caches_gradients:
        return jax.lax.scan(one_step, carry, inputs)
    return _scan_handing_on(target, one_step, carry, inputs, data)


def _scan_handing_on(
    target: TracedModel, one_step: Any, carry: tuple, inputs: tuple, data: jax.Array
) -> tuple:
    """The scan with the chains' evaluation in the carry.

    Evaluated at the path's start, then handed on by each transition, across
    segments.
    """
    carry = _evaluated_at_the_start(target, carry, inputs, data)
    carry, (info, *settings) = jax.lax.scan(one_step, carry, inputs)
    info = _count_first_evaluation(info, inputs, carry[0].position.shape[-2])
    return carry, (info, *settings)


def _count_first_evaluation(
    info: ais.AISInfo, inputs: tuple, chains: int
) -> ais.AISInfo:
    """Add the chains' first evaluation to the path's first step."""
    index, active = inputs[-2], inputs[-1]
    first = jnp.where((index == 0) & active, chains, 0)
    counts = info.num_gradient_evaluations
    return info._replace(
        num_gradient_evaluations=counts + first[:, None].astype(counts.dtype)
    )


def _evaluated_at_the_start(
    target: TracedModel, carry: tuple, inputs: tuple, data: jax.Array
) -> tuple:
    """The carry with the chains evaluated, in the segment that starts the path."""
    state, adapted, cache = carry

    def evaluate_all() -> ais.Evaluation:
        return jax.vmap(
            lambda chains, example: jax.vmap(
                lambda u: ais.evaluate(target, u, example)
            )(chains.position)
        )(state, data)

    cache = jax.lax.cond(inputs[-2][0] == 0, evaluate_all, lambda: cache)
    return state, adapted, cache


# The progress bar of the running segment, moved by a host callback every
# PROGRESS_STRIDE temperatures from inside the compiled loop.
PROGRESS_STRIDE = 16
_ACTIVE_BAR: list[Any] = [None]


@contextlib.contextmanager
def moving(bar: Any) -> Iterator[None]:
    """Let the compiled loop move ``bar`` (``None``: no bar) while the block runs."""
    _ACTIVE_BAR[0] = bar
    try:
        yield
    finally:
        _ACTIVE_BAR[0] = None


def _report_progress(index: Any) -> None:
    bar = _ACTIVE_BAR[0]
    if bar is not None:
        done = int(index) + 1
        if done > bar.n:
            bar.update(done - bar.n)


def interactive() -> bool:
    """Whether a progress bar can be seen: a terminal, or a Jupyter kernel."""
    import sys

    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules


@eqx.filter_jit
def finish(
    target: TracedModel,
    state: ais.AISState,
    beta_prev: jax.Array,
    beta_new: jax.Array,
    data: jax.Array,
) -> tuple[ais.AISState, estimators.TemperatureEstimates]:
    """The last weight increment (``beta_prev -> beta_new``) of every example."""
    return jax.vmap(
        lambda s, example: ais.finish(target, s, example, beta_prev, beta_new)
    )(state, data)


def segment_inputs(
    path: np.ndarray,
    replay: Tuning,
    threshold: float,
    segment: slice,
    chunk: int,
    devices: Sequence[jax.Device] | None,
) -> tuple[jax.Array, ...]:
    """The per-step arrays of one segment, padded to ``chunk`` inactive steps.

    Each step replays its block's row of ``replay``, and resamples where
    ``replay.resample`` says, or (without it) below the ESS fraction ``threshold``.
    """
    dtype = jnp.result_type(float)
    steps = np.arange(segment.start, segment.stop)
    rows = replay.rows(steps)
    if replay.resample is None:
        thresholds = np.full((len(steps), replay.step_size.shape[1]), threshold)
    else:
        thresholds = replay.resample_thresholds(segment)

    def per_example(values: np.ndarray, fill: float) -> jax.Array:
        return shard_examples(
            jnp.asarray(_pad(values, chunk, fill), dtype), devices, axis=1
        )

    return (
        jnp.asarray(_pad(path[:-1][segment], chunk, path[-1]), dtype),
        jnp.asarray(_pad(path[1:][segment], chunk, path[-1]), dtype),
        per_example(replay.step_size[rows], 1.0),
        per_example(replay.inverse_mass_matrix[rows], 1.0),
        per_example(thresholds, 0.0),
        jnp.asarray(_pad(steps, chunk, 0)),
        jnp.asarray(_pad(np.ones(len(steps), bool), chunk, False)),
    )
